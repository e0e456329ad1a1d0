"""The objective contract: finite scalar loss, gradients to every view, row-order invariance, masks."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
from scibind.registry import ObjectiveSpec, Registry

from scibind_testkit.imports import assert_light

__all__ = ["ObjectiveContract"]


class ObjectiveContract:
    """Subclass as ``TestMyLoss(ObjectiveContract)`` and set :attr:`objective_name`.

    Attributes:
        objective_name: The registered objective, e.g. ``"core/clip"``.
        objective_kwargs: Options passed to ``scibind.create_objective``.
        views: View names of the test embeddings.
        batch_size: Rows per view.
        embed_dim: Embedding width.
        mask_equals_subset: Whether masking rows out equals dropping them (true for pairwise objectives over
            two views: every pair needs both views present).
        atol: Tolerance of the loss comparisons.
    """

    objective_name: ClassVar[str] = ""
    objective_kwargs: ClassVar[dict[str, Any]] = {}
    views: ClassVar[tuple[str, ...]] = ("a", "b")
    batch_size: ClassVar[int] = 8
    embed_dim: ClassVar[int] = 16
    mask_equals_subset: ClassVar[bool] = True
    atol: ClassVar[float] = 1e-5

    def make_targets(self) -> dict[str, Any]:
        """Extra targets passed as ``**targets`` (override for objectives that need labels)."""
        return {}

    def make_embeddings(self, seed: int = 0) -> dict[str, Any]:
        """Random ``[batch_size, embed_dim]`` float32 embeddings per view, requiring grad."""
        import torch

        gen = torch.Generator().manual_seed(seed)
        return {
            v: torch.randn(self.batch_size, self.embed_dim, generator=gen).requires_grad_(True)
            for v in self.views
        }

    @pytest.fixture
    def objective_spec(self, scibind_registry: Registry) -> ObjectiveSpec:
        """The registered spec of :attr:`objective_name`."""
        assert self.objective_name, f"{type(self).__name__}: set objective_name"
        return scibind_registry.get("objectives", self.objective_name)

    @pytest.fixture
    def objective(self, objective_spec: ObjectiveSpec) -> Any:
        """The objective built through ``scibind.create_objective``."""
        import scibind
        import torch

        torch.manual_seed(0)
        return scibind.create_objective(objective_spec.name, **self.objective_kwargs)

    def _loss(self, objective: Any, embeddings: dict[str, Any], present: dict[str, Any] | None = None) -> Any:
        return objective(embeddings, present, **self.make_targets())

    def test_returns_loss_output_with_finite_scalar(self, objective: Any):
        """Contract: returns loss output with finite scalar."""
        import torch
        from scibind.align import LossOutput

        out = self._loss(objective, self.make_embeddings())
        assert isinstance(out, LossOutput)
        assert out.loss.ndim == 0 and torch.isfinite(out.loss)
        assert all(isinstance(k, str) for k in out.parts)
        assert all(not v.requires_grad for v in out.parts.values()), "parts must be detached"

    def test_gradients_reach_every_view(self, objective: Any):
        """Contract: gradients reach every view."""
        embeddings = self.make_embeddings()
        self._loss(objective, embeddings).loss.backward()
        for view, tensor in embeddings.items():
            assert tensor.grad is not None and tensor.grad.abs().sum() > 0, (
                f"no gradient reaches view {view!r}"
            )

    def test_row_permutation_invariance(self, objective: Any):
        """Contract: row permutation invariance."""
        import torch

        embeddings = self.make_embeddings()
        perm = torch.randperm(self.batch_size, generator=torch.Generator().manual_seed(1))
        permuted = {v: t.detach()[perm] for v, t in embeddings.items()}
        with torch.no_grad():
            original = self._loss(objective, embeddings).loss
            shuffled = self._loss(objective, permuted).loss
        torch.testing.assert_close(shuffled, original, atol=self.atol, rtol=1e-5)

    def test_all_present_mask_equals_no_mask(self, objective: Any):
        """Contract: all present mask equals no mask."""
        import torch

        embeddings = self.make_embeddings()
        present = {v: torch.ones(self.batch_size, dtype=torch.bool) for v in self.views}
        with torch.no_grad():
            torch.testing.assert_close(
                self._loss(objective, embeddings, present).loss, self._loss(objective, embeddings).loss
            )

    def _mask(self) -> dict[str, Any]:
        import torch

        present = {v: torch.ones(self.batch_size, dtype=torch.bool) for v in self.views}
        present[self.views[0]][: max(1, self.batch_size // 4)] = False
        return present

    def test_absent_rows_are_ignored(self, objective: Any):
        """Contract: absent rows are ignored."""
        import torch

        embeddings, present = self.make_embeddings(), self._mask()
        out = self._loss(objective, embeddings, present)
        assert torch.isfinite(out.loss)
        out.loss.backward()
        absent = ~present[self.views[0]]
        grad = embeddings[self.views[0]].grad
        assert grad is None or grad[absent].abs().max() == 0, "absent rows must get no gradient"
        garbage = {v: t.detach().clone() for v, t in embeddings.items()}
        garbage[self.views[0]][absent] = 1e3
        with torch.no_grad():
            torch.testing.assert_close(
                self._loss(objective, garbage, present).loss, out.loss.detach(), atol=self.atol, rtol=1e-5
            )

    def test_masking_equals_dropping_rows(self, objective: Any):
        """Contract: masking equals dropping rows."""
        import torch

        if not self.mask_equals_subset:
            pytest.skip("mask_equals_subset is False for this objective")
        embeddings, present = self.make_embeddings(), self._mask()
        keep = torch.stack(list(present.values())).all(dim=0)
        subset = {v: t.detach()[keep] for v, t in embeddings.items()}
        with torch.no_grad():
            masked = self._loss(objective, embeddings, present).loss
            dropped = self._loss(objective, subset).loss
        torch.testing.assert_close(masked, dropped, atol=self.atol, rtol=1e-5)

    def test_plugin_module_imports_no_heavy_library(self, objective_spec: ObjectiveSpec):
        """Contract: plugin module imports no heavy library."""
        assert_light(objective_spec.plugin)
