"""CWCL (Srinivasa et al., NeurIPS 2023): continuously weighted positives from a frozen tower.

CLIP treats every other record as an equally wrong match. CWCL weighs each candidate ``j`` of record ``i``
by how similar the two records are *within* the modality of a frozen, pretrained tower ``U``::

    w_ij = (1 + <p_i, p_j>) / 2          p = L2-normalised embeddings of the frozen tower (no gradient)
    L_{U→V} = -(1/n) Σ_i (1 / Σ_j w_ij) Σ_j w_ij log softmax_j(s · <p_i, q_j>)

and the same weights for ``V → U`` (the symmetric form); ``w_ii = 1``. This is
:mod:`scibind.align.soft_clip`'s soft-target loss with ``W = (1 + P Pᵀ) / 2``.

The similarity comes from ``weights_view`` (a view whose tower is frozen, e.g. ``freeze_encoder: true`` with
``projection: none``, or a LiT locked tower), or from ``weights_target``, a float ``[B, K]`` target holding
precomputed frozen features. Rows of a pair where the weights view is absent take no part.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from scibind.align.multiview import Prepared
from scibind.align.soft_clip import SoftClipObjective
from scibind.errors import ConfigError

__all__ = ["CWCLObjective", "cwcl_weights"]


def cwcl_weights(features: torch.Tensor) -> torch.Tensor:
    """``(1 + cos(p_i, p_j)) / 2`` of frozen features ``[n, K]``, detached: ``[n, n]`` in ``[0, 1]``."""
    p = F.normalize(features.detach(), dim=-1)
    return ((1 + p @ p.T) / 2).fill_diagonal_(1.0)


class CWCLObjective(SoftClipObjective):
    """Continuously weighted contrastive loss (see the module docstring).

    Args:
        weights_view: The frozen view whose intra-modal similarity weights the positives.
        weights_target: Instead, a float ``[B, K]`` target with frozen features.
        pairs: View pairs; ``None`` = every pair (or pairs to ``anchor``).
        anchor: Compare every view with this one only (typically the frozen view).
        temperature: Initial τ.
        learn_temperature: Train ``logit_scale``.
        max_logit_scale: Clamp of ``1/τ``.
        gather: Gather across ranks under ``torch.distributed``.
    """

    requires_labels = False

    def __init__(
        self,
        weights_view: str | None = None,
        weights_target: str | None = None,
        pairs: Sequence[Sequence[str]] | None = None,
        anchor: str | None = None,
        temperature: float = 0.07,
        learn_temperature: bool = True,
        max_logit_scale: float = 100.0,
        gather: bool = True,
    ) -> None:
        if (weights_view is None) == (weights_target is None):
            raise ConfigError(
                "objective core/cwcl needs exactly one of 'weights_view' (the frozen tower's view) or "
                "'weights_target' (a float [B, K] target of frozen features)"
            )
        super().__init__(
            pairs=pairs,
            anchor=anchor,
            temperature=temperature,
            learn_temperature=learn_temperature,
            max_logit_scale=max_logit_scale,
            gather=gather,
        )
        self.weights_view = weights_view
        self.weights_target = weights_target

    def target_names(self) -> list[str]:
        """The frozen-feature target, when configured."""
        return [self.weights_target] if self.weights_target else []

    def extra_views(self) -> list[str]:
        """The frozen view."""
        return [self.weights_view] if self.weights_view else []

    def pair_rows(self, batch: Prepared, a: str, b: str) -> torch.Tensor:
        """Both views present, and the frozen view too."""
        rows = batch.masks[a] & batch.masks[b]
        return rows & batch.masks[self.weights_view] if self.weights_view else rows

    def pair_weights(self, batch: Prepared, rows: torch.Tensor, a: str, b: str) -> torch.Tensor:
        """``(1 + cos) / 2`` of the frozen features of the pair's rows."""
        if self.weights_view is not None:
            return cwcl_weights(batch.z[self.weights_view][rows])
        if self.weights_target not in batch.targets:
            raise ConfigError(
                f"objective core/cwcl: target {self.weights_target!r} (frozen features) was not passed"
            )
        return cwcl_weights(batch.targets[self.weights_target][rows].to(batch.z[a].dtype))
