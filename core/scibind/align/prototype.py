"""Prototype alignment (SongCi; MGCA's disease level): cross-modal agreement on balanced cluster codes.

``K`` learnable prototypes ``c_1..c_K`` (unit vectors in the joint space) cluster the records. For one pair
of views with ``n`` rows where both are present, each view's scores ``S_v = z_v Cᵀ`` give

* *codes* ``Q_v = Sinkhorn(exp(S_v / ε))``: soft assignments whose prototypes are used equally across the
  batch (SwAV's equipartition; computed without gradient, ``sinkhorn_iters`` iterations, in log space);
* *predictions* ``P_v = softmax(S_v / τ)``.

The views must agree on their codes, each predicting the other's (swapped prediction)::

    loss(a, b) = ½ [ -(1/n) Σ_i Σ_k Q_a[i,k] log P_b[i,k]  -  (1/n) Σ_i Σ_k Q_b[i,k] log P_a[i,k] ]

averaged over pairs (every pair, explicit ``pairs`` or ``anchor``). ``clip_weight > 0`` adds the
instance-level CLIP loss, as MGCA combines instance and prototype levels. The prototypes need the joint
space's width: set ``embed_dim`` to the recipe's ``embed_dim``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from scibind.align.multiview import MultiViewObjective
from scibind.align.output import LossOutput
from scibind.align.pairs import pair_key, view_pairs
from scibind.align.soft_clip import soft_clip_loss
from scibind.errors import ConfigError

__all__ = ["PrototypeObjective", "sinkhorn"]


@torch.no_grad()
def sinkhorn(scores: torch.Tensor, epsilon: float = 0.05, iters: int = 3) -> torch.Tensor:
    """SwAV's Sinkhorn-Knopp codes ``[n, K]`` (rows sum to 1, prototypes used equally), in log space."""
    n, k = scores.shape
    log_q = scores / epsilon
    log_q = log_q - torch.logsumexp(log_q.reshape(-1), 0)
    for _ in range(iters):
        log_q = log_q - torch.logsumexp(log_q, 0, keepdim=True) - math.log(k)
        log_q = log_q - torch.logsumexp(log_q, 1, keepdim=True) - math.log(n)
    return (log_q + math.log(n)).exp()


class PrototypeObjective(MultiViewObjective):
    """Swapped prototype prediction with Sinkhorn-balanced codes (see the module docstring).

    Args:
        embed_dim: Width of the joint space (the prototypes' width).
        n_prototypes: ``K``.
        epsilon: Sinkhorn's entropic regularisation (SwAV's 0.05).
        sinkhorn_iters: Sinkhorn iterations (SwAV's 3).
        clip_weight: Weight of an added CLIP term (0 = prototype loss only).
        pairs: Explicit pairs; ``None`` = every pair (or pairs to ``anchor``).
        anchor: Compare every view with this one only.
        temperature: Initial τ of the predictions (and of the CLIP term).
        learn_temperature: Train ``logit_scale``.
        max_logit_scale: Clamp of ``1/τ``.
        gather: Gather across ranks under ``torch.distributed`` (Sinkhorn then balances the global batch).
    """

    def __init__(
        self,
        embed_dim: int,
        n_prototypes: int = 64,
        epsilon: float = 0.05,
        sinkhorn_iters: int = 3,
        clip_weight: float = 0.0,
        pairs: Sequence[Sequence[str]] | None = None,
        anchor: str | None = None,
        temperature: float = 0.1,
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
        if n_prototypes < 2 or embed_dim < 1:
            raise ConfigError(
                f"objective options need n_prototypes >= 2, embed_dim >= 1; got {n_prototypes}, {embed_dim}"
            )
        if not (epsilon > 0 and sinkhorn_iters >= 1 and clip_weight >= 0):
            raise ConfigError("objective options need epsilon > 0, sinkhorn_iters >= 1 and clip_weight >= 0")
        gen = torch.Generator().manual_seed(0)
        self.prototypes = nn.Parameter(
            F.normalize(torch.randn(n_prototypes, embed_dim, generator=gen), dim=-1)
        )
        self.epsilon, self.sinkhorn_iters, self.clip_weight = (
            float(epsilon),
            int(sinkhorn_iters),
            float(clip_weight),
        )
        self.pairs = None if pairs is None else [tuple(p) for p in pairs]
        self.anchor = anchor

    def forward(
        self,
        embeddings: Mapping[str, torch.Tensor],
        present: Mapping[str, torch.Tensor] | None = None,
        **targets: torch.Tensor,
    ) -> LossOutput:
        """Mean over pairs of the swapped-prediction loss (plus ``clip_weight`` x CLIP)."""
        pairs = view_pairs(self.pairs, self.anchor, list(embeddings))
        views = sorted({v for p in pairs for v in p})
        batch = self.prepare(embeddings, present, views)
        if batch.z[views[0]].shape[1] != self.prototypes.shape[1]:
            raise ConfigError(
                f"objective core/prototype has embed_dim={self.prototypes.shape[1]} but the embeddings are "
                f"{batch.z[views[0]].shape[1]} wide; set objective.kwargs.embed_dim to the recipe's embed_dim"
            )
        scale = self.scale()
        protos = F.normalize(self.prototypes, dim=-1)
        losses = {}
        for a, b in pairs:
            rows = batch.masks[a] & batch.masks[b]
            n = int(rows.sum())
            if n < 2:
                losses[pair_key(a, b)] = self.zero_loss(batch.z[a], batch.z[b])
                continue
            za, zb = batch.z[a][rows], batch.z[b][rows]
            sa, sb = za @ protos.T.to(za.dtype), zb @ protos.T.to(zb.dtype)
            qa = sinkhorn(sa.detach(), self.epsilon, self.sinkhorn_iters)
            qb = sinkhorn(sb.detach(), self.epsilon, self.sinkhorn_iters)
            s = scale.to(za.dtype)
            loss = -((qa * F.log_softmax(s * sb, 1)).sum() + (qb * F.log_softmax(s * sa, 1)).sum()) / (2 * n)
            if self.clip_weight:
                loss = loss + self.clip_weight * soft_clip_loss(
                    s * za @ zb.T, torch.eye(n, dtype=za.dtype, device=za.device)
                )
            losses[pair_key(a, b)] = loss
        total = torch.stack(list(losses.values())).mean()
        return LossOutput(total, {**{k: v.detach() for k, v in losses.items()}, **self.temperature_parts()})
