"""Symmetric InfoNCE (CLIP) with a learnable, clamped temperature; tiled (exact, O(B·D) memory) by default."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from scibind.align.distributed import is_distributed, rank_rows, sum_of_shards
from scibind.align.pairs import PairwiseObjective, positive_mask
from scibind.align.tiled import infonce_terms, l2_normalize
from scibind.errors import ConfigError

__all__ = ["ClipObjective"]


class ClipObjective(PairwiseObjective):
    """CLIP's symmetric InfoNCE, per pair of views, as in open_clip's ``ClipLoss``.

    For one pair with ``n`` rows where both views are present, ``logits = s * za @ zb.T`` (``s = 1/τ``) and
    the loss is the mean of the cross-entropies over rows (a→b) and over columns (b→a). With multi-positive
    targets each row's target is uniform over its positives. Presence masks, pairs, gathering and the
    temperature clamp are described in :class:`scibind.align.pairs.PairwiseObjective`.

    By default the ``n x n`` logits are never materialised: every row's and column's log-sum-exp comes
    from :func:`scibind.align.tiled.row_col_logsumexp` (blocks, recomputed in backward), and each
    cross-entropy is ``logsumexp - target logit``, where the target logit of a row (its positives' mean
    logit, mixed with the mean logit of the row under label smoothing) is a sum over groups that costs
    ``O(n·D)``. Memory is ``O(n·D + block²)``.

    Args:
        pairs: Pairs of views; ``None`` = every pair of the views given.
        temperature: Initial τ (``logit_scale = log(1/τ)``; open_clip's 0.07).
        learn_temperature: Train ``logit_scale``.
        max_logit_scale: Clamp of ``1/τ`` (open_clip's 100).
        label_smoothing: ε of :func:`torch.nn.functional.cross_entropy`: targets become ``(1-ε) t + ε/n``.
        gather: Gather across ranks under ``torch.distributed``; the tiled loss then computes the blocks of
            this rank's ``1/W`` share of the rows (see :func:`scibind.align.tiled.infonce_terms`).
        positive_target: Target whose shared non-negative codes mark positives (``None``: diagonal only).
        tiled: Block-wise loss (default); ``False`` builds the dense logits.
        block_size: Block side; ``None`` derives it from ``memory_budget_mb``.
        memory_budget_mb: MiB of block temporaries (``None``: the device's default).
        anchor: ImageBind-style: pair every other view with this one only (instead of ``pairs``).
    """

    def __init__(
        self,
        pairs: Sequence[Sequence[str]] | None = None,
        temperature: float = 0.07,
        learn_temperature: bool = True,
        max_logit_scale: float = 100.0,
        label_smoothing: float = 0.0,
        gather: bool = True,
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
        if not 0.0 <= label_smoothing < 1.0:
            raise ConfigError(f"objective option 'label_smoothing' must be in [0, 1), got {label_smoothing}")
        self.label_smoothing = float(label_smoothing)

    @property
    def fuses_normalization(self) -> bool:
        """The tiled loss normalises rows inside its blocks."""
        return self.tiled

    def pair_loss(self, za: torch.Tensor, zb: torch.Tensor, groups: torch.Tensor | None) -> torch.Tensor:
        """Mean of the a→b and b→a cross-entropies over ``n`` rows (see the class docstring)."""
        scale = self.scale()
        if not self.tiled:
            return self._dense_loss(za, zb, groups, scale)
        # Under torchrun each rank computes the blocks of its share of the rows, and its rows' and columns'
        # terms (the column sums are all-reduced inside; scibind.align.distributed explains the rest).
        shard = self.gather and is_distributed()
        n = za.shape[0]
        lo, hi = rank_rows(n) if shard else (0, n)
        lse_rows, lse_cols, diagonal = infonce_terms(
            za, zb, scale, self.block_for(za), normalize=True, rows=(lo, hi), reduce_cols=shard
        )
        if groups is not None or self.label_smoothing:
            za, zb = l2_normalize(za), l2_normalize(zb)  # only these targets need the normalised rows
        target_rows, target_cols = self._target_logits(za, zb, groups, diagonal)
        rows = (lse_rows[lo:hi] - scale * target_rows[lo:hi]).sum()
        cols = (lse_cols[lo:hi] - scale * target_cols[lo:hi]).sum()
        local = (rows + cols) / (2 * n)
        return sum_of_shards(local) if shard else local

    def _target_logits(
        self, za: torch.Tensor, zb: torch.Tensor, groups: torch.Tensor | None, diagonal: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``sum_j t_ij za_i·zb_j`` per row and ``sum_i t_ji za_i·zb_j`` per column, without ``n x n``."""
        if groups is None:
            rows = cols = diagonal
        else:
            n = za.shape[0]
            # Rows without a code are their own group: give each a distinct negative key.
            key = torch.where(groups >= 0, groups, -1 - torch.arange(n, device=groups.device))
            _, inverse = torch.unique(key, return_inverse=True)
            k = int(inverse.max()) + 1
            count = torch.bincount(inverse, minlength=k).to(za.dtype)[inverse]
            sum_a = za.new_zeros(k, za.shape[1]).index_add_(0, inverse, za)[inverse]
            sum_b = zb.new_zeros(k, zb.shape[1]).index_add_(0, inverse, zb)[inverse]
            rows = (za * sum_b).sum(1) / count
            cols = (zb * sum_a).sum(1) / count
        eps = self.label_smoothing
        if eps:
            rows = (1 - eps) * rows + eps * (za @ zb.mean(0))
            cols = (1 - eps) * cols + eps * (zb @ za.mean(0))
        return rows, cols

    def _dense_loss(
        self, za: torch.Tensor, zb: torch.Tensor, groups: torch.Tensor | None, scale: torch.Tensor
    ) -> torch.Tensor:
        logits = scale * (za @ zb.T)
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
