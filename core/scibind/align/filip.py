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

from scibind.align.distributed import gather_no_grad, gather_sizes, is_distributed
from scibind.align.multiview import MultiViewObjective
from scibind.align.output import LossOutput
from scibind.align.pairs import pair_key, view_pairs
from scibind.errors import ConfigError, ShapeError

__all__ = ["FilipObjective", "encode_tokens", "filip_similarity"]


def encode_tokens(model: Any, view: str, data: Any) -> torch.Tensor:
    """``[n, T, D]`` unit token embeddings of one view: the encoder's ``forward_tokens``, then the projection.

    Padding tokens (the encoder's ``token_mask``, or all-zero rows) are exactly zero, which
    :func:`filip_similarity` reads as padding. :meth:`scibind.align.model.MultiTowerModel.encode_tokens`
    also returns the mask.

    Raises:
        ConfigError: The view's encoder has no ``forward_tokens``.
    """
    tower = model.towers[view]
    if not tower.has_tokens:
        raise ConfigError(
            f"view {view!r}: encoder {type(tower.encoder).__name__} has no forward_tokens; core/filip needs "
            "token embeddings (core/cnn, core/tiny-text and core/minilm have them)"
        )
    return model.encode_tokens(view, data)[0]


def _tokens(z: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    if z.dim() == 2:
        z = z[:, None, :]
    if mask is None:
        return z, z.abs().sum(-1) > 0
    if mask.dim() == 1:
        mask = mask[:, None]
    if tuple(mask.shape) != tuple(z.shape[:2]):
        raise ShapeError(f"token mask must be bool{list(z.shape[:2])}, got {tuple(mask.shape)}")
    return z, mask.to(device=z.device, dtype=torch.bool)


def filip_similarity(
    a: torch.Tensor,
    b: torch.Tensor,
    rows_per_tile: int = 64,
    mask_a: torch.Tensor | None = None,
    mask_b: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(S^{a→b} [n_a, n_b], S^{b→a} [n_b, n_a])`` of unit token embeddings.

    ``mask_a`` / ``mask_b`` (``bool[n, T]``) say which tokens are real; without them all-zero tokens are
    padding. A record without any real token scores 0 against every record.
    """
    a, ma = _tokens(a, mask_a)
    b, mb = _tokens(b, mask_b)
    empty_b = ~mb.any(1)  # [n_b]
    ab, ba = [], []
    for r0 in range(0, a.shape[0], rows_per_tile):
        at, mat = a[r0 : r0 + rows_per_tile], ma[r0 : r0 + rows_per_tile]
        empty_a = ~mat.any(1)  # [t]
        sim = torch.einsum("ikd,jrd->ijkr", at, b)  # [t, n_b, T_a, T_b]
        best_b = sim.masked_fill(~mb[None, :, None, :], float("-inf")).amax(3)  # [t, n_b, T_a]
        best_b = best_b.masked_fill(~mat[:, None, :] | empty_b[None, :, None], 0)
        best_b = best_b.sum(2) / mat.sum(1, keepdim=True).clamp_min(1)
        best_a = sim.masked_fill(~mat[:, None, :, None], float("-inf")).amax(2)  # [t, n_b, T_b]
        best_a = best_a.masked_fill(~mb[None, :, :] | empty_a[:, None, None], 0)
        best_a = best_a.sum(2) / mb.sum(1)[None, :].clamp_min(1)
        ab.append(best_b)
        ba.append(best_a.T)
    return torch.cat(ab, 0), torch.cat(ba, 1)


class FilipObjective(MultiViewObjective):
    """FILIP's token-wise late-interaction contrastive loss (see the module docstring).

    From a recipe the trainer passes ``tokens={view: [B, T, D]}`` and ``token_masks={view: bool[B, T]}`` for
    the views of ``token_views`` (``needs_tokens = True``; :mod:`scibind.align.tokens`); every other view
    takes part with its pooled ``[B, D]`` embedding as a single token.

    Args:
        pairs: Explicit pairs; ``None`` = every pair (or pairs to ``anchor``).
        anchor: Compare every view with this one only.
        temperature: Initial τ.
        learn_temperature: Train ``logit_scale``.
        max_logit_scale: Clamp of ``1/τ``.
        rows_per_tile: Records of the first view per similarity tile.
        gather: Gather across ranks under ``torch.distributed``.
        token_views: Views whose token embeddings the trainer passes; ``None`` = every view whose encoder
            has ``forward_tokens``; ``[]`` = none (pooled embeddings only, i.e. CLIP).
    """

    needs_tokens = True

    def __init__(
        self,
        pairs: Sequence[Sequence[str]] | None = None,
        anchor: str | None = None,
        temperature: float = 0.07,
        learn_temperature: bool = True,
        max_logit_scale: float = 100.0,
        rows_per_tile: int = 64,
        gather: bool = True,
        token_views: Sequence[str] | None = None,
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
        if isinstance(token_views, str):
            raise ConfigError(f"objective option 'token_views' must be a list of views, got {token_views!r}")
        self.token_views = None if token_views is None else [str(v) for v in token_views]

    def forward(
        self,
        embeddings: Mapping[str, torch.Tensor],
        present: Mapping[str, torch.Tensor] | None = None,
        *,
        tokens: Mapping[str, torch.Tensor] | None = None,
        token_masks: Mapping[str, torch.Tensor] | None = None,
        **targets: torch.Tensor,
    ) -> LossOutput:
        """Mean over pairs of the symmetric token-level cross-entropy.

        Args:
            embeddings: View -> ``[B, D]`` pooled or ``[B, T, D]`` token embeddings.
            present: View -> ``bool[B]``.
            tokens: View -> ``[B, T, D]`` token embeddings; they replace the view's ``embeddings``.
            token_masks: View -> ``bool[B, T]``: which tokens are real (default: the non-zero ones).
            targets: Ignored (label codes the trainer passes to every objective).
        """
        inputs = {**embeddings, **(tokens or {})}
        pairs = view_pairs(self.pairs, self.anchor, list(inputs))
        views = sorted({v for p in pairs for v in p})
        batch = self.prepare(inputs, present, views, tokens=True)
        masks = self._token_masks(batch.z, token_masks or {}, inputs, views)
        scale = self.scale()
        losses = {}
        for a, b in pairs:
            rows = batch.masks[a] & batch.masks[b]
            n = int(rows.sum())
            if n < 2:
                losses[pair_key(a, b)] = self.zero_loss(batch.z[a], batch.z[b])
                continue
            s_ab, s_ba = filip_similarity(
                batch.z[a][rows],
                batch.z[b][rows],
                self.rows_per_tile,
                None if masks[a] is None else masks[a][rows],
                None if masks[b] is None else masks[b][rows],
            )
            s = scale.to(s_ab.dtype)
            target = torch.arange(n, device=s_ab.device)
            losses[pair_key(a, b)] = (
                F.cross_entropy(s * s_ab, target) + F.cross_entropy(s * s_ba, target)
            ) / 2
        loss = torch.stack(list(losses.values())).mean()
        return LossOutput(loss, {**{k: v.detach() for k, v in losses.items()}, **self.temperature_parts()})

    def _token_masks(
        self,
        z: Mapping[str, torch.Tensor],
        given: Mapping[str, torch.Tensor],
        inputs: Mapping[str, torch.Tensor],
        views: Sequence[str],
    ) -> dict[str, torch.Tensor | None]:
        """Given token masks, checked and (under ``torch.distributed``) gathered like the tokens."""
        out: dict[str, torch.Tensor | None] = {}
        for v in views:
            m = given.get(v)
            if m is None:
                out[v] = None
                continue
            e = inputs[v]
            if e.dim() != 3 or tuple(m.shape) != tuple(e.shape[:2]):
                raise ShapeError(
                    f"token_masks[{v!r}] must be bool{list(e.shape[:2])} for tokens of shape "
                    f"{tuple(e.shape)}, got {tuple(m.shape)}"
                )
            m = m.to(device=e.device, dtype=torch.bool)
            if self.gather and is_distributed():
                m = _gather_mask(m, gather_sizes(m.shape[0], m.device), z[v].shape[1])
            out[v] = m
        return out


def _gather_mask(mask: torch.Tensor, counts: list[int], width: int) -> torch.Tensor:
    """Gather ``bool[n, T]`` token masks padded (false) to the gathered tokens' ``width``."""
    padded = mask.new_zeros(mask.shape[0], width)
    padded[:, : mask.shape[1]] = mask
    return gather_no_grad(padded, counts)
