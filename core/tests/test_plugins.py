"""The plugin manager: entry-point discovery, broken plugins, strict mode, environment switches."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import scibind
from scibind.errors import PluginError
from scibind.plugins import call_isolated, get_plugin_state, load_plugins, reset_plugins
from scibind.registry import EncoderSpec, ModalitySpec, ReaderSpec

SWITCHES = (
    "SCIBIND_STRICT_PLUGINS",
    "SCIBIND_DISABLE_PLUGIN_AUTOLOAD",
    "SCIBIND_LOAD_PLUGINS",
    "SCIBIND_DISABLED_PLUGINS",
)
_counter = itertools.count()

GOOD_PLUGIN = """
from scibind import EncoderSpec, hookimpl

@hookimpl
def scibind_register_encoders(register):
    register(EncoderSpec("lazy", "an encoder whose module is never imported by listing", modality="vector",
                         embed_dim=4, factory="{factory_module}:build"))
"""
FACTORY_MODULE = """
import sys
sys.modules[__name__].imported = True

def build():
    return "built"
"""


@pytest.fixture(autouse=True)
def clean_plugin_state(monkeypatch):
    for name in SWITCHES:
        monkeypatch.delenv(name, raising=False)
    reset_plugins()
    yield
    reset_plugins()


def unique(prefix: str) -> str:
    return f"{prefix}_{os.getpid()}_{next(_counter)}"


def make_distribution(site: Path, dist: str, entry_points: dict[str, str], modules: dict[str, str]) -> Path:
    """A real installed distribution: ``<dist>-1.2.3.dist-info``, METADATA, ``[scibind]`` entry points."""
    site.mkdir(parents=True, exist_ok=True)
    info = site / f"{dist.replace('-', '_')}-1.2.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.2.3\n", encoding="utf-8")
    lines = "".join(f"{name} = {module}\n" for name, module in entry_points.items())
    (info / "entry_points.txt").write_text(f"[scibind]\n{lines}", encoding="utf-8")
    for module, source in modules.items():
        (site / f"{module}.py").write_text(source, encoding="utf-8")
    return site


@pytest.fixture
def installed(tmp_path, monkeypatch):
    """Install (on sys.path) a good plugin with a lazy factory and a plugin whose import raises."""
    good, factory, broken = unique("sbgood"), unique("sbfactory"), unique("sbbroken")
    site = make_distribution(
        tmp_path / "site",
        "acme-scibind",
        {good: good, broken: broken},
        {
            good: GOOD_PLUGIN.format(factory_module=factory),
            factory: FACTORY_MODULE,
            broken: "raise ImportError('libfoo.so: cannot open shared object file')\n",
        },
    )
    monkeypatch.syspath_prepend(str(site))
    yield {"site": site, "good": good, "factory": factory, "broken": broken}
    for module in (good, factory, broken):
        sys.modules.pop(module, None)


class Good:
    @staticmethod
    @scibind.hookimpl
    def scibind_register_readers(register):
        register(ReaderSpec("good-reader", modality="vector", factory="scibind.builtin.readers:VectorReader"))


class RaisesHalfway:
    @staticmethod
    @scibind.hookimpl
    def scibind_register_modalities(register):
        register(ModalitySpec("halfway_modality"))

    @staticmethod
    @scibind.hookimpl
    def scibind_register_encoders(register):
        register(EncoderSpec("first", factory="m:f"))
        raise RuntimeError("boom in hook")


class Incompatible:
    scibind_api_version = 999

    @staticmethod
    @scibind.hookimpl
    def scibind_register_encoders(register):
        register(EncoderSpec("never", factory="m:f"))


class StealsCoreModality:
    @staticmethod
    @scibind.hookimpl
    def scibind_register_modalities(register):
        register(ModalitySpec("vector"))


def test_core_registers_through_the_same_hooks():
    state = load_plugins()
    core = state.records["core"]
    assert core.status == "loaded" and core.distribution == "scibind-core"
    assert "core/clip" in core.registered["objectives"]


def test_hook_that_raises_is_rolled_back_and_others_still_work():
    state = load_plugins({"good": Good, "halfway": RaisesHalfway})
    record = state.records["halfway"]
    assert record.status == "failed"
    assert "boom in hook" in record.error and record.registered == {}
    assert "halfway_modality" not in state.registry.entries["modalities"]
    assert "halfway/first" not in state.registry.entries["encoders"]
    assert state.records["good"].status == "loaded"
    assert "good/good-reader" in state.registry.entries["readers"]
    assert "core/clip" in state.registry.entries["objectives"]


def test_incompatible_api_version_is_skipped():
    state = load_plugins({"old": Incompatible, "good": Good})
    record = state.records["old"]
    assert record.status == "incompatible"
    assert "plugin API 999" in record.error
    assert "old/never" not in state.registry.entries["encoders"]
    assert state.records["good"].status == "loaded"


def test_duplicate_modality_fails_only_the_second_plugin():
    state = load_plugins({"thief": StealsCoreModality})
    assert state.records["thief"].status == "failed"
    assert "registered twice" in state.records["thief"].error
    assert state.registry.get("modalities", "vector").plugin == "core"


def test_strict_mode_raises_naming_the_plugin(monkeypatch):
    with pytest.raises(PluginError, match=r"halfway \(failed\)"):
        load_plugins({"halfway": RaisesHalfway}, strict=True)
    monkeypatch.setenv("SCIBIND_STRICT_PLUGINS", "1")
    with pytest.raises(PluginError, match=r"old \(incompatible\)"):
        load_plugins({"old": Incompatible})


def test_entry_point_discovery_with_lazy_factory(installed):
    state = load_plugins()
    good = state.records[installed["good"]]
    assert (good.status, good.distribution, good.version) == ("loaded", "acme-scibind", "1.2.3")
    name = f"{installed['good']}/lazy"
    assert good.registered == {"encoders": [name]}
    assert [s.name for s in scibind.list_encoders("vector") if s.name == name] == [name]
    assert installed["factory"] not in sys.modules, "listing must not import the factory module"
    assert scibind.create_encoder(name) == "built"
    assert installed["factory"] in sys.modules


def test_plugin_whose_import_raises_is_recorded(installed):
    state = load_plugins()
    record = state.records[installed["broken"]]
    assert record.status == "failed"
    assert "import failed" in record.error and "libfoo.so" in record.error
    assert state.records[installed["good"]].status == "loaded"
    with pytest.raises(PluginError, match=installed["broken"]):
        load_plugins(strict=True)


@pytest.mark.parametrize(
    ("env", "status"),
    [
        ({"SCIBIND_DISABLED_PLUGINS": "{good}"}, "blocked"),
        ({"SCIBIND_LOAD_PLUGINS": "someone_else"}, "blocked"),
        ({"SCIBIND_DISABLE_PLUGIN_AUTOLOAD": "1"}, "blocked"),
        ({"SCIBIND_DISABLE_PLUGIN_AUTOLOAD": "1", "SCIBIND_LOAD_PLUGINS": "{good}"}, "loaded"),
        ({"SCIBIND_DISABLE_PLUGIN_AUTOLOAD": "0"}, "loaded"),
    ],
)
def test_environment_switches(installed, monkeypatch, env, status):
    for key, value in env.items():
        monkeypatch.setenv(key, value.format(good=installed["good"]))
    state = load_plugins()
    record = state.records[installed["good"]]
    assert record.status == status
    if status == "blocked":
        assert record.error and record.registered == {}
        assert f"{installed['good']}/lazy" not in state.registry.entries["encoders"]
    assert state.records["core"].status == "loaded", "the built-in plugin is never blocked"


def test_disabled_broken_plugin_does_not_fail_strict_mode(installed, monkeypatch):
    monkeypatch.setenv("SCIBIND_DISABLED_PLUGINS", installed["broken"])
    state = load_plugins(strict=True)
    assert state.records[installed["broken"]].status == "blocked"


def test_get_plugin_state_loads_once_and_reset_forgets():
    first = get_plugin_state()
    assert get_plugin_state() is first
    reset_plugins()
    assert get_plugin_state() is not first


def test_command_hook_failure_is_recorded_not_raised():
    class BadCommands:
        @staticmethod
        @scibind.hookimpl
        def scibind_register_commands(cli):
            raise ValueError("no commands today")

    load_plugins({"badcli": BadCommands})
    results = call_isolated("scibind_register_commands", cli=object())
    assert "badcli" not in results
    assert "no commands today" in get_plugin_state().records["badcli"].error


def _run_cli(args, site, **env):
    full_env = {k: v for k, v in os.environ.items() if k not in SWITCHES}
    full_env.update(PYTHONPATH=str(site), **env)
    return subprocess.run(
        [sys.executable, "-m", "scibind", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=120,
        check=False,
    )


def test_cli_discovers_real_entry_points_in_a_subprocess(installed):
    proc = _run_cli(["plugins", "--json"], installed["site"])
    assert proc.returncode == 0, proc.stderr
    rows = {row["name"]: row for row in json.loads(proc.stdout)}
    assert rows[installed["good"]]["status"] == "loaded"
    assert rows[installed["good"]]["distribution"] == "acme-scibind"
    assert rows[installed["broken"]]["status"] == "failed"
    assert rows["core"]["status"] == "loaded"

    strict = _run_cli(["plugins", "--json"], installed["site"], SCIBIND_STRICT_PLUGINS="1")
    assert strict.returncode != 0
    assert installed["broken"] in strict.stderr and "SCIBIND_STRICT_PLUGINS" in strict.stderr
    assert "Traceback" not in strict.stderr
