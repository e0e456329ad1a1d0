"""GRAM (Cicchetti et al., ICLR 2025): contrast records by the volume their views span.

For an anchor view ``a`` and the other views ``m_1 .. m_k`` (``k + 1 = n >= 2`` views, any ``n``; the
reference code is written for 3 or 4), the *volume* between anchor ``i`` and record ``j``'s other views is
``V_ij = sqrt(|det G_ij|)``, with ``G_ij`` the Gram matrix of the unit vectors
``[a_i, m_{1,j}, ..., m_{k,j}]``. A small volume means the views are aligned. The loss is CLIP's symmetric
cross-entropy on ``-V / τ``::

    loss = ½ [ CE(-V/τ, diag) + CE(-Vᵀ/τ, diag) ]      (label smoothing 0.1, as the reference code)

``gram_volume`` builds every ``G_ij`` from ``k + 1`` matrix products (anchor x each other view) and the
``k(k+1)/2`` per-record dot products of the other views, then takes batched determinants: ``O(N² n²)``
memory, no ``N x N x D`` tensor. ``gram_similarity`` (``-V``) ranks candidates at retrieval time.

Missing views: the anchor must be present; a record's absent non-anchor views are left out of its volume
(their row and column of ``G`` become the identity, so ``det G`` is that of the present views). Records with
the anchor and no other present view take no part.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F

from scibind.align.multiview import MultiViewObjective
from scibind.align.output import LossOutput
from scibind.errors import ConfigError

__all__ = ["GramObjective", "gram_similarity", "gram_volume"]


def gram_volume(
    anchor: torch.Tensor, others: Sequence[torch.Tensor], present: Sequence[torch.Tensor] | None = None
) -> torch.Tensor:
    """Volumes ``[Q, C]`` spanned by ``anchor[q]`` and every candidate ``c``'s other views.

    Args:
        anchor: ``[Q, D]`` unit rows.
        others: ``[C, D]`` unit rows of each other view.
        present: ``bool[C]`` per other view; absent views are left out of the volume.
    """
    k = len(others)
    q, c = anchor.shape[0], others[0].shape[0]
    gram = anchor.new_zeros(q, c, k + 1, k + 1)
    gram[..., 0, 0] = (anchor * anchor).sum(-1)[:, None]
    for i, m in enumerate(others, start=1):
        cross = anchor @ m.T
        gram[..., 0, i] = cross
        gram[..., i, 0] = cross
        for j in range(i, k + 1):
            inner = (m * others[j - 1]).sum(-1)
            gram[..., i, j] = inner[None, :]
            gram[..., j, i] = inner[None, :]
    if present is not None:
        for i, mask in enumerate(present, start=1):
            absent = ~mask
            if bool(absent.any()):
                eye = torch.zeros(k + 1, dtype=gram.dtype, device=gram.device)
                eye[i] = 1
                cols = gram[:, absent]
                cols[..., i, :] = eye
                cols[..., :, i] = eye
                gram[:, absent] = cols
    return torch.linalg.det(gram).abs().sqrt()


def gram_similarity(query: torch.Tensor, candidates: Sequence[torch.Tensor]) -> torch.Tensor:
    """Retrieval scores ``[Q, C]``: minus the volume of each query with each candidate's views.

    Args:
        query: ``[Q, D]`` embeddings of the query view (normalised here).
        candidates: ``[C, D]`` embeddings of each other view of the candidates (normalised here).
    """
    return -gram_volume(F.normalize(query, dim=-1), [F.normalize(c, dim=-1) for c in candidates])


class GramObjective(MultiViewObjective):
    """GRAM's volume contrastive loss (see the module docstring).

    Args:
        views: Views to contrast (``None``: every view given, sorted).
        anchor: The anchor view (the reference uses text); ``None`` = the first of ``views``.
        temperature: Initial τ (logits are ``-V / τ``).
        learn_temperature: Train ``logit_scale``.
        max_logit_scale: Clamp of ``1/τ``.
        label_smoothing: ε of the cross-entropies (the reference's 0.1).
        gather: Gather across ranks under ``torch.distributed``.
    """

    def __init__(
        self,
        views: Sequence[str] | None = None,
        anchor: str | None = None,
        temperature: float = 0.07,
        learn_temperature: bool = True,
        max_logit_scale: float = 100.0,
        label_smoothing: float = 0.1,
        gather: bool = True,
    ) -> None:
        super().__init__(
            views,
            temperature=temperature,
            learn_temperature=learn_temperature,
            max_logit_scale=max_logit_scale,
            gather=gather,
        )
        if not 0.0 <= label_smoothing < 1.0:
            raise ConfigError(f"objective option 'label_smoothing' must be in [0, 1), got {label_smoothing}")
        self.anchor = anchor
        self.label_smoothing = float(label_smoothing)

    def forward(
        self,
        embeddings: Mapping[str, torch.Tensor],
        present: Mapping[str, torch.Tensor] | None = None,
        **targets: torch.Tensor,
    ) -> LossOutput:
        """Symmetric cross-entropy of ``-V/τ`` over records with the anchor and another view present."""
        views = self.select_views(embeddings)
        anchor = views[0] if self.anchor is None else self.anchor
        if anchor not in views:
            raise ConfigError(f"objective option 'anchor': {anchor!r} is not one of the views {views}")
        others = [v for v in views if v != anchor]
        batch = self.prepare(embeddings, present, views)
        z, masks = batch.z, batch.masks
        rows = masks[anchor] & torch.stack([masks[v] for v in others]).any(0)
        n = int(rows.sum())
        if n < 2:
            return LossOutput(
                self.zero_loss(*z.values()), {"gram": torch.zeros(()), **self.temperature_parts()}
            )
        pick = (lambda t: t[rows]) if n < rows.shape[0] else (lambda t: t)
        volume = gram_volume(pick(z[anchor]), [pick(z[v]) for v in others], [pick(masks[v]) for v in others])
        logits = -self.scale() * volume
        target = torch.arange(n, device=logits.device)
        eps = self.label_smoothing
        loss = (
            F.cross_entropy(logits, target, label_smoothing=eps)
            + F.cross_entropy(logits.T, target, label_smoothing=eps)
        ) / 2
        return LossOutput(loss, {"gram": loss.detach(), **self.temperature_parts()})
