"""The plugin contract: the plugin loads (strictly), names its components, stays light to import."""

from __future__ import annotations

from typing import ClassVar

from scibind.registry import Registry

from scibind_testkit.imports import assert_light

__all__ = ["PluginContract"]


class PluginContract:
    """Subclass as ``TestMyPlugin(PluginContract)`` and set :attr:`plugin_name` (its entry-point name).

    Attributes:
        plugin_name: The entry-point name in the ``scibind`` group.
    """

    plugin_name: ClassVar[str] = ""

    def test_plugin_loads(self, scibind_registry: Registry):
        """Contract: plugin loads."""
        from scibind.plugins import get_plugin_state

        record = get_plugin_state().records.get(self.plugin_name)
        assert record is not None, f"no plugin named {self.plugin_name!r}; is the distribution installed?"
        assert record.status == "loaded", f"{record.status}: {record.error}"
        assert record.registered, "the plugin registered nothing"

    def test_components_are_named_after_the_plugin(self, scibind_registry: Registry):
        """Contract: components are named after the plugin."""
        mine = [spec for spec in scibind_registry if spec.plugin == self.plugin_name]
        for spec in mine:
            if spec.kind != "modalities":
                assert spec.name.startswith(f"{self.plugin_name}/"), spec.name

    def test_factories_are_lazy_references(self, scibind_registry: Registry):
        """Contract: factories are lazy references."""
        for spec in scibind_registry:
            if spec.plugin != self.plugin_name:
                continue
            for attr in ("factory", "collate"):
                value = getattr(spec, attr, None)
                assert value is None or isinstance(value, str), (
                    f"{spec.name}: {attr} should be a 'module:attr' string so listing imports nothing heavy"
                )

    def test_plugin_module_imports_no_heavy_library(self, scibind_registry: Registry):
        """Contract: plugin module imports no heavy library."""
        assert_light(self.plugin_name)
