"""The testkit's own helpers: the light-import probe and the shared data lookup."""

from __future__ import annotations

import pytest
from scibind.errors import PluginError
from scibind_testkit import heavy_imports
from scibind_testkit.pytest_plugin import find_shared_data


def test_heavy_imports_are_measured_in_a_fresh_interpreter():
    assert heavy_imports("json") == ()
    assert heavy_imports("scibind.builtin.plugin") == ()
    assert "torch" in heavy_imports("scibind.data.types")


def test_unimportable_module_is_a_plugin_error():
    with pytest.raises(PluginError, match="nonexistent_module_xyz"):
        heavy_imports("nonexistent_module_xyz")


def test_shared_data_lookup(tmp_path, monkeypatch):
    monkeypatch.setenv("SCIBIND_TEST_DATA", str(tmp_path))
    assert find_shared_data(tmp_path / "anywhere") == tmp_path
    monkeypatch.setenv("SCIBIND_TEST_DATA", str(tmp_path / "absent"))
    assert find_shared_data(tmp_path) is None
    monkeypatch.delenv("SCIBIND_TEST_DATA")
    (tmp_path / "shared" / "data").mkdir(parents=True)
    assert find_shared_data(tmp_path / "repo" / "sub") == tmp_path / "shared" / "data"
