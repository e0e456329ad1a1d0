"""The docs cover every hook and every CLI command, and build with ``mkdocs build --strict``."""

from __future__ import annotations

import inspect
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def headings(page: str) -> list[str]:
    text = (DOCS / page).read_text(encoding="utf-8")
    return [line.lstrip("#").strip().replace("`", "") for line in text.splitlines() if line.startswith("#")]


def hook_names() -> list[str]:
    from scibind import hookspecs

    return [
        name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction) if hasattr(fn, "scibind_spec")
    ]


def command_paths() -> list[str]:
    """Every core command as ``"plugins"``, ``"list readers"``, ... (plugin-added commands excluded)."""
    from scibind.cli.main import app

    def walk(command: Any, prefix: str) -> list[str]:
        if hasattr(command, "commands"):  # a group (typer vendors its own click)
            out = []
            for name, sub in command.commands.items():
                module = getattr(getattr(sub, "callback", None), "__module__", "") or ""
                if hasattr(sub, "commands") or module.startswith("scibind."):
                    out += walk(sub, f"{prefix} {name}".strip())
            return out
        return [prefix]

    return walk(typer.main.get_command(app), "")


def test_every_hook_is_documented():
    names = hook_names()
    assert len(names) >= 9
    documented = set(headings("hooks.md"))
    assert [n for n in names if n not in documented] == [], "add a '## `<hook>`' section to docs/hooks.md"


def test_every_cli_command_is_documented():
    paths = command_paths()
    assert {"plugins", "list readers", "inspect", "prepare", "doctor"} <= set(paths)
    documented = set(headings("cli.md"))
    missing = [p for p in paths if f"scibind {p}" not in documented]
    assert missing == [], "add a '## `scibind <command>`' section to docs/cli.md"


@pytest.mark.parametrize("page", ["cli.md", "hooks.md", "plugins.md", "install.md", "index.md"])
def test_page_exists_and_is_in_the_nav(page):
    assert (DOCS / page).is_file()
    assert page in (ROOT / "mkdocs.yml").read_text(encoding="utf-8")


@pytest.mark.slow
def test_mkdocs_build_strict(tmp_path):
    if shutil.which("mkdocs", path=str(Path(sys.executable).parent)) is None:
        pytest.fail("mkdocs is not installed in this environment; pip install -r requirements-dev.txt")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "-f",
            str(ROOT / "mkdocs.yml"),
            "-d",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert (tmp_path / "index.html").is_file()
    assert re.search(r"scibind prepare", (tmp_path / "cli" / "index.html").read_text(encoding="utf-8"))
