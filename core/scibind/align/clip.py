"""Symmetric InfoNCE (CLIP) with a learnable, clamped temperature."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from scibind.align.pairs import PairwiseObjective, positive_mask
from scibind.errors import ConfigError

__all__ = ["ClipObjective"]


class ClipObjective(PairwiseObjective):
    """CLIP's symmetric InfoNCE, per pair of views, as in open_clip's ``ClipLoss``.

    For one pair with ``n`` rows where both views are present, ``logits = s * za @ zb.T`` (``s = 1/τ``) and
    the loss is the mean of the cross-entropies over rows (a→b) and over columns (b→a). With multi-positive
    targets each row's target is uniform over its positives. Presence masks, pairs, gathering and the
    temperature clamp are described in :class:`scibind.align.pairs.PairwiseObjective`.

    Args:
        pairs: Pairs of views; ``None`` = every pair of the views given.
        init_temperature: Initial τ (``logit_scale = log(1/τ)``; open_clip's 0.07).
        learn_temperature: Train ``logit_scale``.
        max_logit_scale: Clamp of ``1/τ`` (open_clip's 100).
        label_smoothing: ε of :func:`torch.nn.functional.cross_entropy`: targets become ``(1-ε) t + ε/n``.
        gather: Gather across ranks under ``torch.distributed``.
        positive_target: Target whose shared non-negative codes mark positives (``None``: diagonal only).
    """

    def __init__(
        self,
        pairs: Sequence[Sequence[str]] | None = None,
        init_temperature: float = 0.07,
        learn_temperature: bool = True,
        max_logit_scale: float = 100.0,
        label_smoothing: float = 0.0,
        gather: bool = True,
        positive_target: str | None = None,
    ) -> None:
        super().__init__(
            pairs,
            init_temperature=init_temperature,
            learn_temperature=learn_temperature,
            max_logit_scale=max_logit_scale,
            positive_target=positive_target,
            gather=gather,
        )
        if not 0.0 <= label_smoothing < 1.0:
            raise ConfigError(f"objective option 'label_smoothing' must be in [0, 1), got {label_smoothing}")
        self.label_smoothing = float(label_smoothing)

    def pair_loss(self, za: torch.Tensor, zb: torch.Tensor, groups: torch.Tensor | None) -> torch.Tensor:
        """Mean of the a→b and b→a cross-entropies over ``n`` rows (see the class docstring)."""
        logits = self.scale() * (za @ zb.T)
        if groups is None:
            target: torch.Tensor = torch.arange(za.shape[0], device=za.device)
        else:
            # Positives are symmetric, so the row-normalised matrix is also the target of the columns.
            target = positive_mask(groups).to(logits.dtype)
            target = target / target.sum(dim=1, keepdim=True)
        eps = self.label_smoothing
        return (
            F.cross_entropy(logits, target, label_smoothing=eps)
            + F.cross_entropy(logits.T, target, label_smoothing=eps)
        ) / 2
