"""Pairwise sigmoid loss (SigLIP) with learnable temperature and bias; tiled (exact) by default."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from scibind.align.distributed import rank_rows, sum_of_shards
from scibind.align.pairs import PairwiseObjective, positive_mask
from scibind.align.tiled import sigmoid_pair_sum
from scibind.errors import ConfigError

__all__ = ["SigLipObjective"]


class SigLipObjective(PairwiseObjective):
    """SigLIP's sigmoid loss, per pair of views, as in the SigLIP paper and open_clip's ``SigLipLoss``.

    For one pair with ``n`` rows where both views are present, ``logits = s * za @ zb.T + bias`` and
    ``loss = -sum(log sigmoid(y * logits)) / n`` with ``y = +1`` for positives (the diagonal, plus rows
    sharing a group code) and ``-1`` elsewhere. Presence masks, pairs, gathering and the temperature clamp are
    described in :class:`scibind.align.pairs.PairwiseObjective`.

    By default the loss comes from :func:`scibind.align.tiled.sigmoid_pair_sum`: one pass over blocks of
    the logits computes the loss and, since each element's gradient depends on that element only, all the
    gradients too (memory ``O(n·D + block²)``).

    Args:
        pairs: Pairs of views; ``None`` = every pair of the views given.
        temperature: Initial τ; the paper's ``t' = log 10`` is τ = 0.1.
        bias: Initial bias (the paper's -10).
        learn_temperature: Train ``logit_scale``.
        learn_bias: Train ``logit_bias``.
        gather: Gather across ranks under ``torch.distributed``; each rank then computes the terms of its
            ``1/W`` share of the rows (:func:`scibind.align.distributed.sum_of_shards`).
        max_logit_scale: Clamp of ``1/τ`` (100, as open_clip applies to every model).
        positive_target: Target whose shared non-negative codes mark positives (``None``: diagonal only).
        tiled: Block-wise loss (default); ``False`` builds the dense logits.
        block_size: Block side; ``None`` derives it from ``memory_budget_mb``.
        memory_budget_mb: MiB of block temporaries (``None``: the device's default).
        anchor: ImageBind-style: pair every other view with this one only (instead of ``pairs``).
    """

    def __init__(
        self,
        pairs: Sequence[Sequence[str]] | None = None,
        temperature: float = 0.1,
        bias: float = -10.0,
        learn_temperature: bool = True,
        learn_bias: bool = True,
        gather: bool = True,
        max_logit_scale: float = 100.0,
        positive_target: str | None = None,
        tiled: bool = True,
        block_size: int | None = None,
        memory_budget_mb: float | None = None,
        anchor: str | None = None,
    ) -> None:
        super().__init__(
            pairs,
            anchor=anchor,
            temperature=temperature,
            learn_temperature=learn_temperature,
            max_logit_scale=max_logit_scale,
            positive_target=positive_target,
            gather=gather,
            tiled=tiled,
            block_size=block_size,
            memory_budget_mb=memory_budget_mb,
        )
        if not math.isfinite(bias):
            raise ConfigError(f"objective option 'bias' must be a finite number, got {bias}")
        init = torch.tensor(float(bias), dtype=torch.float32)
        if learn_bias:
            self.logit_bias = nn.Parameter(init)
        else:
            self.register_buffer("logit_bias", init)

    @property
    def fuses_normalization(self) -> bool:
        """The tiled loss normalises rows inside its blocks."""
        return self.tiled

    def pair_loss(self, za: torch.Tensor, zb: torch.Tensor, groups: torch.Tensor | None) -> torch.Tensor:
        """``-sum(log sigmoid(y * logits)) / n`` over ``n`` rows (see the class docstring)."""
        n = za.shape[0]
        # Under torchrun each rank sums the terms of its share of the rows (scibind.align.distributed).
        lo, hi = rank_rows(n) if self.gather else (0, n)
        if self.tiled:
            scale, bias, block = self.scale(), self.logit_bias, self.block_for(za)
            local = sigmoid_pair_sum(za, zb, scale, bias, groups, block, normalize=True, rows=(lo, hi))
        else:
            logits = self.scale() * (za[lo:hi] @ zb.T) + self.logit_bias
            signs = positive_mask(groups, n)[lo:hi].to(logits) * 2 - 1
            local = -F.logsigmoid(signs * logits).sum()
        return sum_of_shards(local / n) if self.gather else local / n

    def extra_parts(self) -> dict[str, torch.Tensor]:
        """The bias, to log beside the temperature."""
        return {"bias": self.logit_bias.detach()}
