"""pytest entry point of the scibind testkit: fixtures shared by every plugin's tests.

Fixtures:

- ``scibind_registry``: plugins freshly loaded (honouring ``SCIBIND_*`` switches); reset afterwards.
- ``scibind_load_plugins``: a function ``load(extra=None, strict=None) -> PluginState`` for tests that add
  plugin objects; the state is reset afterwards.
- ``shared_data_dir``: the shared folder of real sample files (``$SCIBIND_TEST_DATA`` or ``../shared/data``
  beside the checkout). Tests using it skip when it is absent, except under ``CI``, where they fail.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest
from scibind.plugins import PluginState, load_plugins, reset_plugins
from scibind.registry import Registry


def find_shared_data(start: Path) -> Path | None:
    """``$SCIBIND_TEST_DATA``, else the first ``<ancestor>/../shared/data`` above ``start`` that exists."""
    if os.environ.get("SCIBIND_TEST_DATA"):
        path = Path(os.environ["SCIBIND_TEST_DATA"]).expanduser()
        return path if path.is_dir() else None
    for base in (start, *start.parents):
        candidate = base.parent / "shared" / "data"
        if candidate.is_dir():
            return candidate
    return None


@pytest.fixture
def scibind_registry() -> Iterator[Registry]:
    """The registry of freshly loaded plugins; plugin state is reset after the test."""
    reset_plugins()
    try:
        yield load_plugins().registry
    finally:
        reset_plugins()


@pytest.fixture
def scibind_load_plugins() -> Iterator[Callable[..., PluginState]]:
    """``load(extra=None, strict=None)``: load plugins plus ``extra`` plugin objects; reset afterwards."""

    def load(extra: Mapping[str, object] | None = None, strict: bool | None = None) -> PluginState:
        return load_plugins(extra, strict=strict)

    reset_plugins()
    try:
        yield load
    finally:
        reset_plugins()


@pytest.fixture(scope="session")
def shared_data_dir(request: pytest.FixtureRequest) -> Path:
    """The shared folder of real sample files; skips when absent (fails when ``CI`` is set)."""
    path = find_shared_data(Path(str(request.config.rootpath)).resolve())
    if path is None:
        message = (
            "shared test data folder not found: set SCIBIND_TEST_DATA or place it at ../shared/data beside "
            "the checkout"
        )
        if os.environ.get("CI"):
            pytest.fail(f"{message} (CI is set, so tests that need it must not skip)")
        pytest.skip(message)
    return path
