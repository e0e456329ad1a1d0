"""Checking that importing a plugin module pulls in no heavy library (run in a fresh interpreter)."""

from __future__ import annotations

import json
import subprocess
import sys
from functools import cache

from scibind.errors import PluginError

__all__ = ["HEAVY_MODULES", "assert_light", "heavy_imports", "plugin_module_name"]

HEAVY_MODULES: tuple[str, ...] = (
    "torch",
    "openslide",
    "rdkit",
    "monai",
    "scanpy",
    "anndata",
    "torch_geometric",
    "transformers",
)


@cache
def heavy_imports(module: str) -> tuple[str, ...]:
    """The heavy libraries that ``import <module>`` loads, measured in a fresh interpreter (cached).

    Args:
        module: A dotted module name, e.g. ``"scibind_pathology.plugin"``.

    Raises:
        PluginError: The module cannot be imported at all.
    """
    code = (
        f"import {module}; import sys, json; "
        f"print(json.dumps(sorted(m for m in {HEAVY_MODULES!r} if m in sys.modules)))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False
    )
    if proc.returncode != 0:
        raise PluginError(f"importing {module!r} failed in a fresh interpreter:\n{proc.stderr.strip()}")
    return tuple(json.loads(proc.stdout.strip().splitlines()[-1]))


def plugin_module_name(plugin: str) -> str:
    """The module name of the loaded plugin ``plugin`` (``"core"`` -> ``"scibind.builtin.plugin"``)."""
    from scibind.plugins import get_plugin_state

    state = get_plugin_state()
    if plugin not in state.modules:
        record = state.records.get(plugin)
        why = f" ({record.status}: {record.error})" if record else ""
        raise PluginError(f"plugin {plugin!r} is not loaded{why}; `scibind plugins` shows every plugin")
    module = state.modules[plugin]
    return str(getattr(module, "__name__", type(module).__module__))


def assert_light(plugin: str) -> None:
    """Fail when importing ``plugin``'s module imports any of :data:`HEAVY_MODULES`."""
    module = plugin_module_name(plugin)
    heavy = heavy_imports(module)
    assert not heavy, (
        f"importing plugin module {module!r} imports {', '.join(heavy)}; a plugin module must only register "
        "specs with 'module:attr' factories and import heavy libraries inside the factories"
    )
