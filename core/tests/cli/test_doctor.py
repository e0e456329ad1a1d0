"""`scibind doctor`: offline preflight."""

from __future__ import annotations

import json
import subprocess
import sys

import scibind
from scibind.registry import EncoderSpec


def test_doctor_passes_here(cli, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result = cli("doctor", "--json", "--cache-dir", str(tmp_path / "cache"))
    assert result.code == 0, result.stdout
    report = json.loads(result.stdout)
    checks = {c["name"]: c for c in report["checks"]}
    assert report["ok"] is True
    assert checks["torch"]["status"] == "ok"
    assert checks["MiniLM weights"]["status"] == "ok"
    assert checks["HF_HUB_OFFLINE"]["status"] == "ok"
    assert checks["plugin core"]["status"] == "ok"
    assert checks["encoder core/minilm"]["status"] == "ok"
    assert (tmp_path / "cache").is_dir()


def test_doctor_does_not_load_the_text_model(tmp_path):
    # A fresh interpreter: other tests in this worker may have imported transformers already.
    code = (
        "import sys; from scibind.cli.main import main\n"
        "try:\n"
        f"    main(['doctor', '--json', '--cache-dir', {str(tmp_path)!r}])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print([m for m in ('sentence_transformers', 'transformers') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_doctor_warns_about_offline_switch_and_missing_requirements(
    cli, monkeypatch, tmp_path, scibind_load_plugins
):
    class Needy:
        @staticmethod
        @scibind.hookimpl
        def scibind_register_encoders(register):
            register(EncoderSpec("needy", factory="m:f", requires=("nonexistent-dist-xyz>=1",)))

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    scibind_load_plugins({"needy": Needy})
    report = json.loads(cli("doctor", "--json", "--cache-dir", str(tmp_path)).stdout)
    checks = {c["name"]: c for c in report["checks"]}
    assert (
        checks["HF_HUB_OFFLINE"]["status"] == "warn" and "HF_HUB_OFFLINE=1" in checks["HF_HUB_OFFLINE"]["fix"]
    )
    assert checks["encoder needy/needy"]["fix"] == "pip install 'nonexistent-dist-xyz>=1'"


def test_doctor_fails_on_broken_plugin_and_unwritable_cache(cli, tmp_path, scibind_load_plugins, monkeypatch):
    monkeypatch.delenv("SCIBIND_STRICT_PLUGINS", raising=False)  # CI sets it; this test wants the report

    class Broken:
        @staticmethod
        @scibind.hookimpl
        def scibind_register_encoders(register):
            raise RuntimeError("broken on purpose")

    scibind_load_plugins({"broken": Broken}, strict=False)
    blocker = tmp_path / "file"
    blocker.write_text("not a folder", encoding="utf-8")
    result = cli("doctor", "--json", "--cache-dir", str(blocker / "cache"))
    assert result.code == 1
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    assert (
        checks["plugin broken"]["status"] == "error"
        and "broken on purpose" in checks["plugin broken"]["detail"]
    )
    assert checks["cache dir"]["status"] == "error"
    assert cli("doctor", "--cache-dir", str(blocker / "cache")).code == 1
