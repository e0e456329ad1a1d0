"""`scibind plugins` and `scibind list`."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import scibind
from scibind.registry import KINDS, EncoderSpec


class Needy:
    @staticmethod
    @scibind.hookimpl
    def scibind_register_encoders(register):
        register(
            EncoderSpec(
                "needy",
                "needs a package that is not installed",
                modality="vector",
                embed_dim=8,
                factory="nonexistent_module_xyz:f",
                requires=("nonexistent-dist-xyz>=1",),
            )
        )


def test_plugins_json_lists_core_first_with_registrations(cli):
    result = cli("plugins", "--json")
    assert result.code == 0
    rows = json.loads(result.stdout)
    assert rows[0]["name"] == "core"
    assert set(rows[0]) == {"name", "distribution", "version", "status", "error", "registered"}
    assert "core/tiny-mlp" in rows[0]["registered"]["encoders"]
    assert any(r["name"] == "template" and r["status"] == "loaded" for r in rows)


def test_plugins_table_for_people(cli):
    result = cli("plugins")
    assert result.code == 0
    assert "core" in result.stdout and "loaded" in result.stdout


@pytest.mark.parametrize("kind", KINDS)
def test_list_every_kind(cli, kind):
    result = cli("list", kind, "--json")
    assert result.code == 0, result.stderr
    entries = json.loads(result.stdout)
    assert entries, f"core registers at least one of {kind}"
    assert all({"name", "plugin", "description", "available", "install_hint"} <= set(e) for e in entries)
    assert cli("list", kind).code == 0


def test_list_shows_key_fields(cli):
    encoders = {e["name"]: e for e in json.loads(cli("list", "encoders", "--json").stdout)}
    assert encoders["core/tiny-mlp"]["embed_dim"] == 32 and encoders["core/tiny-mlp"]["modality"] == "vector"
    readers = {e["name"]: e for e in json.loads(cli("list", "readers", "--json").stdout)}
    assert "*.png" in readers["core/image"]["patterns"]


def test_unavailable_entries_show_the_pip_command(cli, scibind_load_plugins, monkeypatch):
    monkeypatch.setenv("COLUMNS", "300")
    scibind_load_plugins({"needy": Needy})
    result = cli("list", "encoders", "--json")
    [entry] = [e for e in json.loads(result.stdout) if e["name"] == "needy/needy"]
    assert entry["available"] is False
    assert entry["install_hint"] == "pip install 'nonexistent-dist-xyz>=1'"
    table = cli("list", "encoders")
    assert "nonexistent-dist-xyz" in table.stdout


def test_unknown_kind_is_a_usage_error(cli):
    result = cli("list", "widgets")
    assert result.code == 2


def test_listing_imports_no_torch():
    code = (
        "import sys; from scibind.cli.main import main\n"
        "for args in (['plugins', '--json'], ['list', 'encoders', '--json'], ['--help']):\n"
        "    try:\n        main(args)\n"
        "    except SystemExit as e:\n        assert e.code == 0, (args, e.code)\n"
        "print('TORCH' if 'torch' in sys.modules else 'LIGHT', file=sys.stderr)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == "LIGHT", "plugins/list/--help must not import torch"
