"""Contract tests for scibind plugins: subclass a contract, point it at your component, run pytest.

Example::

    from scibind_testkit import ReaderContract

    class TestMyReader(ReaderContract):
        reader_name = "myplugin/reader"

        def make_valid_input(self, tmp_path):
            path = tmp_path / "ok.ext"
            path.write_text(...)
            return str(path)

        def make_bad_input(self, tmp_path):
            path = tmp_path / "broken.ext"
            path.write_text("garbage")
            return str(path)

The pytest plugin (:mod:`scibind_testkit.pytest_plugin`, loaded automatically once the testkit is installed)
adds the fixtures ``scibind_registry``, ``scibind_load_plugins`` and ``shared_data_dir``.
"""

from __future__ import annotations

from scibind_testkit.encoders import EncoderContract
from scibind_testkit.heads import HeadContract
from scibind_testkit.imports import HEAVY_MODULES, heavy_imports
from scibind_testkit.objectives import ObjectiveContract
from scibind_testkit.plugins import PluginContract
from scibind_testkit.readers import ReaderContract

__all__ = [
    "HEAVY_MODULES",
    "EncoderContract",
    "HeadContract",
    "ObjectiveContract",
    "PluginContract",
    "ReaderContract",
    "heavy_imports",
]
