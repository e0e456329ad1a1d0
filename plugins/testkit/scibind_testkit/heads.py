"""The head contract: a head consumes embeddings and returns a flat ``dict[str, float]``."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import pytest
from scibind.registry import HeadSpec, Registry

from scibind_testkit.imports import assert_light

__all__ = ["HeadContract"]


class HeadContract:
    """Subclass as ``TestMyHead(HeadContract)``, set :attr:`head_name` and implement :meth:`make_head_input`.

    Attributes:
        head_name: The registered head, e.g. ``"core/retrieval"``.
        head_kwargs: Options passed to ``scibind.create_head``.
    """

    head_name: ClassVar[str] = ""
    head_kwargs: ClassVar[dict[str, Any]] = {}

    def make_head_input(self) -> Any:
        """Return what the head is called with (for evaluation tasks: a ``scibind.evaluate`` EvalContext)."""
        raise NotImplementedError(f"{type(self).__name__} must implement make_head_input()")

    def call_head(self, head: Any, head_input: Any) -> Any:
        """Run the head on its input (default: ``head(head_input)``)."""
        return head(head_input)

    @pytest.fixture
    def head_spec(self, scibind_registry: Registry) -> HeadSpec:
        """The registered spec of :attr:`head_name`."""
        assert self.head_name, f"{type(self).__name__}: set head_name"
        return scibind_registry.get("heads", self.head_name)

    @pytest.fixture
    def head(self, head_spec: HeadSpec) -> Any:
        """The head built through ``scibind.create_head``."""
        import scibind

        return scibind.create_head(head_spec.name, **self.head_kwargs)

    def test_returns_flat_dict_of_floats(self, head: Any):
        """Contract: returns flat dict of floats."""
        result = self.call_head(head, self.make_head_input())
        assert isinstance(result, dict) and result, "a head returns a non-empty dict of metrics"
        for key, value in result.items():
            assert isinstance(key, str), f"metric key {key!r} must be a string"
            assert isinstance(value, float) and not isinstance(value, bool), (
                f"metric {key!r} must be a Python float (flat dict), got {type(value).__name__}"
            )
            assert math.isfinite(value) or math.isnan(value)

    def test_is_deterministic(self, head: Any):
        """Contract: is deterministic."""
        first = self.call_head(head, self.make_head_input())
        second = self.call_head(head, self.make_head_input())
        assert first.keys() == second.keys()
        for key in first:
            assert first[key] == second[key] or (math.isnan(first[key]) and math.isnan(second[key])), key

    def test_plugin_module_imports_no_heavy_library(self, head_spec: HeadSpec):
        """Contract: plugin module imports no heavy library."""
        assert_light(head_spec.plugin)
