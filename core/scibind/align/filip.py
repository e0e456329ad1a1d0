"""FILIP (Yao et al., ICLR 2022) token-level late interaction; MGCA's token level is the same similarity.

Each view gives ``[B, T, D]`` token embeddings (encoders with ``forward_tokens``; see
:func:`encode_tokens`); all-zero tokens are padding. For records ``i`` (view ``a``) and ``j`` (view ``b``)
with valid tokens ``K_i`` and ``R_j``::

    S^{a→b}_ij = (1/|K_i|) Σ_{k ∈ K_i} max_{r ∈ R_j} <a_ik, b_jr>      (each a-token finds its best b-token)
    S^{b→a}_ji = (1/|R_j|) Σ_{r ∈ R_j} max_{k ∈ K_i} <b_jr, a_ik>
    loss(a, b) = ½ [ CE(s · S^{a→b}, diag) + CE(s · S^{b→a}, diag) ]

With one token per record (``[B, D]`` input) this is CLIP. The ``[n, n, T_a, T_b]`` token similarities are
computed ``rows_per_tile`` records of ``a`` at a time. Pairs: every pair (default), explicit ``pairs`` or
``anchor``; the loss is the mean over pairs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from scibind.align.multiview import MultiViewObjective, view_pairs
from scibind.align.output import LossOutput
from scibind.align.pairs import pair_key
from scibind.errors import ConfigError

__all__ = ["FilipObjective", "encode_tokens", "filip_similarity"]


def encode_tokens(model: Any, view: str, data: Any) -> torch.Tensor:
    """``[n, T, D]`` unit token embeddings of one view: the encoder's ``forward_tokens``, then the projection.

    Raises:
        ConfigError: The view's encoder has no ``forward_tokens``.
    """
    tower = model.towers[view]
    if not hasattr(tower.encoder, "forward_tokens"):
        raise ConfigError(
            f"view {view!r}: encoder {type(tower.encoder).__name__} has no forward_tokens; core/filip needs "
            "token embeddings (core/cnn has them)"
        )
    with torch.set_grad_enabled(torch.is_grad_enabled() and not tower.freeze_encoder):
        tokens = tower.encoder.forward_tokens(data)
    return F.normalize(tower.projection(tokens), dim=-1)


def _tokens(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if z.dim() == 2:
        z = z[:, None, :]
    return z, z.abs().sum(-1) > 0


def filip_similarity(
    a: torch.Tensor, b: torch.Tensor, rows_per_tile: int = 64
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(S^{a→b} [n_a, n_b], S^{b→a} [n_b, n_a])`` of unit token embeddings (zero tokens = padding)."""
    a, ma = _tokens(a)
    b, mb = _tokens(b)
    ab, ba = [], []
    for r0 in range(0, a.shape[0], rows_per_tile):
        at, mat = a[r0 : r0 + rows_per_tile], ma[r0 : r0 + rows_per_tile]
        sim = torch.einsum("ikd,jrd->ijkr", at, b)  # [t, n_b, T_a, T_b]
        best_b = sim.masked_fill(~mb[None, :, None, :], float("-inf")).amax(3)  # [t, n_b, T_a]
        best_b = best_b.masked_fill(~mat[:, None, :], 0).sum(2) / mat.sum(1, keepdim=True).clamp_min(1)
        best_a = sim.masked_fill(~mat[:, None, :, None], float("-inf")).amax(2)  # [t, n_b, T_b]
        best_a = best_a.masked_fill(~mb[None, :, :], 0).sum(2) / mb.sum(1)[None, :].clamp_min(1)
        ab.append(best_b)
        ba.append(best_a.T)
    return torch.cat(ab, 0), torch.cat(ba, 1)


class FilipObjective(MultiViewObjective):
    """FILIP's token-wise late-interaction contrastive loss (see the module docstring).

    Args:
        pairs: Explicit pairs; ``None`` = every pair (or pairs to ``anchor``).
        anchor: Compare every view with this one only.
        temperature: Initial τ.
        learn_temperature: Train ``logit_scale``.
        max_logit_scale: Clamp of ``1/τ``.
        rows_per_tile: Records of the first view per similarity tile.
        gather: Gather across ranks under ``torch.distributed``.
    """

    def __init__(
        self,
        pairs: Sequence[Sequence[str]] | None = None,
        anchor: str | None = None,
        temperature: float = 0.07,
        learn_temperature: bool = True,
        max_logit_scale: float = 100.0,
        rows_per_tile: int = 64,
        gather: bool = True,
    ) -> None:
        super().__init__(
            None,
            temperature=temperature,
            learn_temperature=learn_temperature,
            max_logit_scale=max_logit_scale,
            gather=gather,
        )
        if rows_per_tile < 1:
            raise ConfigError(f"objective option 'rows_per_tile' must be >= 1, got {rows_per_tile}")
        self.pairs = None if pairs is None else [tuple(p) for p in pairs]
        self.anchor = anchor
        self.rows_per_tile = int(rows_per_tile)

    def forward(
        self,
        embeddings: Mapping[str, torch.Tensor],
        present: Mapping[str, torch.Tensor] | None = None,
        **targets: torch.Tensor,
    ) -> LossOutput:
        """Mean over pairs of the symmetric token-level cross-entropy."""
        pairs = view_pairs(self.pairs, self.anchor, list(embeddings))
        views = sorted({v for p in pairs for v in p})
        batch = self.prepare(embeddings, present, views, tokens=True)
        scale = self.scale()
        losses = {}
        for a, b in pairs:
            rows = batch.masks[a] & batch.masks[b]
            n = int(rows.sum())
            if n < 2:
                losses[pair_key(a, b)] = self.zero_loss(batch.z[a], batch.z[b])
                continue
            s_ab, s_ba = filip_similarity(batch.z[a][rows], batch.z[b][rows], self.rows_per_tile)
            s = scale.to(s_ab.dtype)
            target = torch.arange(n, device=s_ab.device)
            losses[pair_key(a, b)] = (
                F.cross_entropy(s * s_ab, target) + F.cross_entropy(s * s_ba, target)
            ) / 2
        loss = torch.stack(list(losses.values())).mean()
        return LossOutput(loss, {**{k: v.detach() for k, v in losses.items()}, **self.temperature_parts()})
