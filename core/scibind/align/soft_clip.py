"""Soft-label and multi-positive (1-to-K) CLIP: targets from label vectors instead of the identity.

For one pair of views with ``n`` rows where both are present, logits ``L = s · za zbᵀ`` (``s = 1/τ``) and a
non-negative weight matrix ``W`` (``W_ii = 1``), each direction is a soft-target cross-entropy::

    T = W / W.sum(1)              (row-normalised)
    loss(a, b) = ½ [ -Σ_ij T_ij log softmax_j(L_i·)  +  -Σ_ij T'_ij log softmax_i(L_·j) ] / n

with ``T'`` the row-normalised ``Wᵀ``. With ``W = I`` this is CLIP. Weights come from label vectors
``y_i`` (Cardiac-CLIP's structured findings):

* ``mode="soft"``: ``W_ij = max(0, cos(y_i, y_j))`` — records with similar findings are partial positives;
* ``mode="multi_positive"``: ``W_ij = 1`` when ``y_i = y_j`` (and ``y_i`` is not empty), else 0 — every
  record with the same label vector is a positive (1-to-K); the target is uniform over them.

Labels are either integer target columns (``labels=[finding_a, finding_b]``: one-hot attributes; code
``-1`` = unknown attribute, which counts as neither shared nor different) or one float ``[B, K]`` target
(``label_vector``). A record whose vector is empty has only itself as positive.

Pairs: every pair of views (default), explicit ``pairs``, or ``anchor=<view>`` for ImageBind-style pairs to
one view; the loss is the mean over pairs (a pair with fewer than two rows contributes 0).
:class:`SoftClipObjective.pair_weights` is the one method a variant overrides (:mod:`scibind.align.cwcl`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F

from scibind.align.multiview import MultiViewObjective, Prepared
from scibind.align.output import LossOutput
from scibind.align.pairs import pair_key, view_pairs
from scibind.errors import ConfigError

__all__ = ["SoftClipObjective", "label_similarity", "soft_clip_loss"]

MODES = ("soft", "multi_positive")


def soft_clip_loss(logits: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Mean of the row and column soft-target cross-entropies of ``logits`` under ``weights`` (``n x n``)."""
    rows = weights / weights.sum(1, keepdim=True)
    cols = weights.T / weights.T.sum(1, keepdim=True)
    n = logits.shape[0]
    a_to_b = -(rows * F.log_softmax(logits, 1)).sum() / n
    b_to_a = -(cols * F.log_softmax(logits.T, 1)).sum() / n
    return (a_to_b + b_to_a) / 2


def label_similarity(codes: Sequence[torch.Tensor] | None, vectors: torch.Tensor | None) -> torch.Tensor:
    """Cosine similarity ``[n, n]`` of label vectors (one-hot attributes of ``codes``, or ``vectors``).

    Empty vectors have similarity 0 to everything.
    """
    if vectors is not None:
        v = F.normalize(vectors.to(torch.float64), dim=-1)
        return v @ v.T
    assert codes is not None
    known = torch.stack([c >= 0 for c in codes]).to(torch.float64)  # [L, n]
    shared = sum(((c[:, None] == c[None, :]) & (c >= 0)[:, None]).to(torch.float64) for c in codes)
    count = known.sum(0)
    return shared / (count[:, None] * count[None, :]).sqrt().clamp_min(1e-12)


class SoftClipObjective(MultiViewObjective):
    """Soft-label / multi-positive CLIP over pairs of views (see the module docstring).

    Args:
        labels: Integer target names whose codes form each record's attribute vector.
        label_vector: Name of one float ``[B, K]`` target holding the label vectors (instead of ``labels``).
        mode: ``"soft"`` (cosine weights) or ``"multi_positive"`` (identical vectors are positives).
        pairs: Explicit view pairs; ``None`` = every pair (or pairs to ``anchor``).
        anchor: ImageBind-style: compare every view with this one only.
        temperature: Initial τ.
        learn_temperature: Train ``logit_scale``.
        max_logit_scale: Clamp of ``1/τ``.
        gather: Gather across ranks under ``torch.distributed``.
    """

    requires_labels = True

    def __init__(
        self,
        labels: Sequence[str] | str | None = None,
        label_vector: str | None = None,
        mode: str = "soft",
        pairs: Sequence[Sequence[str]] | None = None,
        anchor: str | None = None,
        temperature: float = 0.07,
        learn_temperature: bool = True,
        max_logit_scale: float = 100.0,
        gather: bool = True,
    ) -> None:
        super().__init__(
            None,
            temperature=temperature,
            learn_temperature=learn_temperature,
            max_logit_scale=max_logit_scale,
            gather=gather,
        )
        if mode not in MODES:
            raise ConfigError(f"objective option 'mode' must be one of {MODES}, got {mode!r}")
        self.labels = [labels] if isinstance(labels, str) else (None if labels is None else list(labels))
        self.label_vector = label_vector
        if self.requires_labels and (self.labels is None) == (label_vector is None):
            raise ConfigError(
                "objective core/soft-clip needs exactly one of 'labels' (integer targets, e.g. [finding]) "
                "or 'label_vector' (a float [B, K] target)"
            )
        self.mode = mode
        self.pairs = None if pairs is None else [tuple(p) for p in pairs]
        self.anchor = anchor

    def target_names(self) -> list[str]:
        """The targets ``forward`` gathers and passes to :meth:`pair_weights`."""
        return [*(self.labels or []), *([self.label_vector] if self.label_vector else [])]

    def pair_weights(self, batch: Prepared, rows: torch.Tensor, a: str, b: str) -> torch.Tensor | None:
        """``W`` (``n x n``, ``W_ii = 1``) of the pair's rows, or ``None`` (a target is missing: W = I)."""
        names = self.target_names()
        if any(name not in batch.targets for name in names):
            return None
        if self.labels is not None:
            sim = label_similarity([batch.targets[name][rows].long() for name in self.labels], None)
        else:
            sim = label_similarity(None, batch.targets[self.label_vector][rows])
        weights = sim.clamp_min(0) if self.mode == "soft" else (sim >= 1 - 1e-6).to(sim.dtype)
        return weights.fill_diagonal_(1.0)

    def pair_rows(self, batch: Prepared, a: str, b: str) -> torch.Tensor:
        """Rows of one pair: both views present."""
        return batch.masks[a] & batch.masks[b]

    def forward(
        self,
        embeddings: Mapping[str, torch.Tensor],
        present: Mapping[str, torch.Tensor] | None = None,
        **targets: torch.Tensor,
    ) -> LossOutput:
        """Mean over pairs of the soft-target symmetric cross-entropy."""
        pairs = view_pairs(self.pairs, self.anchor, list(embeddings))
        missing = [v for v in self.extra_views() if v not in embeddings]
        if missing:
            raise ConfigError(
                f"objective needs embeddings of view(s) {missing}; the views are {sorted(embeddings)}"
            )
        views = sorted({v for p in pairs for v in p} | set(self.extra_views()))
        wanted = {name: targets.get(name) for name in self.target_names()}
        batch = self.prepare(embeddings, present, views, wanted)
        scale = self.scale()
        losses = {}
        for a, b in pairs:
            rows = self.pair_rows(batch, a, b)
            n = int(rows.sum())
            if n < 2:
                losses[pair_key(a, b)] = self.zero_loss(batch.z[a], batch.z[b])
                continue
            za, zb = batch.z[a][rows], batch.z[b][rows]
            logits = scale.to(za.dtype) * (za @ zb.T)
            weights = self.pair_weights(batch, rows, a, b)
            if weights is None:
                weights = torch.eye(n, dtype=logits.dtype, device=logits.device)
            losses[pair_key(a, b)] = soft_clip_loss(logits, weights.to(logits.dtype))
        loss = torch.stack(list(losses.values())).mean()
        return LossOutput(loss, {**{k: v.detach() for k, v in losses.items()}, **self.temperature_parts()})

    def extra_views(self) -> list[str]:
        """Views needed besides those of the pairs (CWCL's frozen view)."""
        return []
