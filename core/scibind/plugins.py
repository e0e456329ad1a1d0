"""The plugin manager: discovery through entry points, failure capture and environment switches.

Plugins are modules exposed through the ``scibind`` entry-point group (``name = "package.module"``). The
core's own components (:mod:`scibind.builtin.plugin`) register through the same hooks under the plugin
name ``core``. A plugin that fails to import, declares an incompatible API version or raises in a hook is
recorded and skipped; the rest keep working. Environment switches:

- ``SCIBIND_STRICT_PLUGINS=1``: any failed or incompatible plugin raises :class:`PluginError`.
- ``SCIBIND_DISABLE_PLUGIN_AUTOLOAD=1``: entry points are not loaded, except those named in
  ``SCIBIND_LOAD_PLUGINS``.
- ``SCIBIND_LOAD_PLUGINS=a,b``: load only these entry-point plugins (others are ``blocked``).
- ``SCIBIND_DISABLED_PLUGINS=a,b``: never load these (``blocked``).
"""

from __future__ import annotations

import importlib.metadata
import os
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pluggy

from scibind import hookspecs
from scibind.errors import PluginError
from scibind.registry import ComponentSpec, Registry

__all__ = [
    "PLUGIN_API_VERSION",
    "PluginRecord",
    "PluginState",
    "get_plugin_state",
    "load_plugins",
    "call_isolated",
    "reset_plugins",
]

PLUGIN_API_VERSION = 1
"""Bumped when hooks change incompatibly; a plugin may declare ``scibind_api_version`` to be checked."""

ENTRY_POINT_GROUP = "scibind"
REGISTRATION_HOOKS = (
    "scibind_register_modalities",
    "scibind_register_readers",
    "scibind_register_encoders",
    "scibind_register_objectives",
    "scibind_register_heads",
    "scibind_register_model_configs",
    "scibind_register_datasets",
)


@dataclass
class PluginRecord:
    """What happened to one plugin.

    Attributes:
        name: Plugin name (the entry-point name; ``core`` for the built-ins).
        distribution: The distribution providing it.
        version: That distribution's version.
        status: ``loaded``, ``failed``, ``blocked`` (disabled by a switch) or ``incompatible``.
        error: Why it is not loaded ("" when it is).
        registered: Full names it registered, by kind.
    """

    name: str
    distribution: str = ""
    version: str = ""
    status: str = "loaded"
    error: str = ""
    registered: dict[str, list[str]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form used by ``scibind plugins --json``."""
        return {
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "status": self.status,
            "error": self.error,
            "registered": self.registered,
        }


@dataclass
class PluginState:
    """The loaded plugin manager, its registry and one record per plugin."""

    manager: pluggy.PluginManager
    registry: Registry
    records: dict[str, PluginRecord]
    modules: dict[str, object]

    @property
    def failures(self) -> list[PluginRecord]:
        """Plugins that failed or are incompatible."""
        return [r for r in self.records.values() if r.status in ("failed", "incompatible")]


_STATE: PluginState | None = None


def _env_list(name: str) -> set[str] | None:
    value = os.environ.get(name)
    if value is None:
        return None
    return {part.strip() for part in value.split(",") if part.strip()}


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")


def _short_error(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" (at {frames[-1].filename}:{frames[-1].lineno})" if frames else ""
    return f"{type(exc).__name__}: {exc}{where}"


def _check_api_version(module: object) -> str:
    declared = getattr(module, "scibind_api_version", PLUGIN_API_VERSION)
    if declared != PLUGIN_API_VERSION:
        return (
            f"plugin targets scibind plugin API {declared}, this scibind-core provides {PLUGIN_API_VERSION}; "
            "upgrade the plugin or scibind-core so they match"
        )
    return ""


def _discover(
    records: dict[str, PluginRecord], candidates: list[tuple[str, str, str, Callable[[], object]]]
) -> dict[str, object]:
    """Load candidate plugin modules, filling ``records``; return name -> module for the loadable ones."""
    only = _env_list("SCIBIND_LOAD_PLUGINS")
    disabled = _env_list("SCIBIND_DISABLED_PLUGINS") or set()
    autoload = not _env_flag("SCIBIND_DISABLE_PLUGIN_AUTOLOAD")
    modules: dict[str, object] = {}
    for name, dist, version, load in candidates:
        record = PluginRecord(name=name, distribution=dist, version=version)
        records[name] = record
        if name in disabled:
            record.status, record.error = "blocked", "disabled by SCIBIND_DISABLED_PLUGINS"
            continue
        if only is not None and name not in only:
            record.status, record.error = "blocked", "not listed in SCIBIND_LOAD_PLUGINS"
            continue
        if not autoload and (only is None or name not in only):
            record.status, record.error = "blocked", "SCIBIND_DISABLE_PLUGIN_AUTOLOAD is set"
            continue
        try:
            module = load()
        except Exception as exc:
            record.status, record.error = "failed", f"import failed: {_short_error(exc)}"
            continue
        problem = _check_api_version(module)
        if problem:
            record.status, record.error = "incompatible", problem
            continue
        modules[name] = module
    return modules


def _entry_point_candidates() -> list[tuple[str, str, str, Callable[[], object]]]:
    out = []
    seen: set[str] = set()
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in seen:
            continue
        seen.add(ep.name)
        dist = ep.dist.name if ep.dist is not None else ""
        version = ep.dist.version if ep.dist is not None else ""
        out.append((ep.name, dist, version, ep.load))
    return out


def _core_version() -> str:
    try:
        return importlib.metadata.version("scibind-core")
    except importlib.metadata.PackageNotFoundError:
        return ""


def _run_registration(
    pm: pluggy.PluginManager, registry: Registry, name: str, module: object, record: PluginRecord
) -> None:
    """Call every registration hook of one plugin; on any error roll its contributions back."""
    added: list[ComponentSpec] = []

    def register(spec: ComponentSpec) -> ComponentSpec:
        stored = registry.add(spec, plugin=name, distribution=record.distribution)
        added.append(stored)
        return stored

    try:
        for hook_name in REGISTRATION_HOOKS:
            for impl in getattr(pm.hook, hook_name).get_hookimpls():
                if impl.plugin_name == name:
                    impl.function(register=register)
    except Exception as exc:
        for spec in added:
            registry.entries[spec.kind].pop(spec.name, None)
        record.status = "failed"
        record.error = f"hook raised: {_short_error(exc)}"
        record.registered = {}
        pm.unregister(name=name)
        return
    for spec in added:
        record.registered.setdefault(spec.kind, []).append(spec.name)


def load_plugins(extra: Mapping[str, object] | None = None, *, strict: bool | None = None) -> PluginState:
    """Discover, load and register every plugin, replacing the current state.

    Args:
        extra: Additional plugin objects by name (used by tests and embedding applications); they go
            through the same checks as entry-point plugins.
        strict: Raise on any failed plugin; defaults to ``SCIBIND_STRICT_PLUGINS``.

    Returns:
        The new :class:`PluginState`.

    Raises:
        PluginError: In strict mode, when any plugin failed or is incompatible.
    """
    global _STATE
    pm = pluggy.PluginManager("scibind")
    pm.add_hookspecs(hookspecs)
    registry = Registry()
    records: dict[str, PluginRecord] = {}

    from scibind.builtin import plugin as core_plugin

    candidates: list[tuple[str, str, str, Callable[[], object]]] = []
    candidates.extend(_entry_point_candidates())
    for extra_name, obj in (extra or {}).items():
        candidates.append((extra_name, getattr(obj, "__name__", ""), "", lambda obj=obj: obj))

    records["core"] = PluginRecord(name="core", distribution="scibind-core", version=_core_version())
    modules: dict[str, object] = {"core": core_plugin}
    modules.update(_discover(records, [c for c in candidates if c[0] != "core"]))

    for name, module in modules.items():
        record = records[name]
        try:
            pm.register(module, name=name)
        except Exception as exc:
            record.status, record.error = "failed", f"invalid hook implementation: {_short_error(exc)}"
            continue
        _run_registration(pm, registry, name, module, record)

    state = PluginState(manager=pm, registry=registry, records=records, modules=modules)
    _STATE = state
    if strict is None:
        strict = _env_flag("SCIBIND_STRICT_PLUGINS")
    if strict and state.failures:
        lines = "; ".join(f"{r.name} ({r.status}): {r.error}" for r in state.failures)
        raise PluginError(f"plugins failed to load (SCIBIND_STRICT_PLUGINS is set): {lines}")
    return state


def get_plugin_state() -> PluginState:
    """Return the loaded plugin state, loading plugins on first use."""
    return _STATE if _STATE is not None else load_plugins()


def reset_plugins() -> None:
    """Forget the loaded state so the next use loads plugins again (tests use this)."""
    global _STATE
    _STATE = None


def call_isolated(hook_name: str, **kwargs: Any) -> dict[str, Any]:
    """Call a non-registration hook plugin by plugin, recording failures instead of raising.

    Args:
        hook_name: Name of the hook (e.g. ``"scibind_register_commands"``).
        **kwargs: Hook arguments.

    Returns:
        Plugin name -> return value, for plugins that did not raise.
    """
    state = get_plugin_state()
    results: dict[str, Any] = {}
    for impl in getattr(state.manager.hook, hook_name).get_hookimpls():
        try:
            results[impl.plugin_name] = impl.function(**kwargs)
        except Exception as exc:
            if _env_flag("SCIBIND_STRICT_PLUGINS"):
                raise PluginError(
                    f"plugin {impl.plugin_name!r} raised in {hook_name}: {_short_error(exc)}"
                ) from exc
            record = state.records.get(impl.plugin_name)
            if record is not None:
                record.error = f"{hook_name} raised: {_short_error(exc)}"
    return results
