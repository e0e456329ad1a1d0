"""CLOOME's objective: InfoLOOB (leave-one-out InfoNCE) with optional modern-Hopfield retrieval.

InfoLOOB (Poole et al. 2019; used by CLOOB, Fürst et al. 2022, and CLOOME, Sanchez-Fernandez et al. 2023)
drops the positive from the denominator of InfoNCE. For query ``x_i``, keys ``y_j`` and positives ``P_i``
(the diagonal, or every row sharing the ``positive_target`` code)::

    loss_i = τ * ( -s * mean_{p in P_i} x_i·y_p  +  logsumexp_{j not in P_i} s * x_i·y_j ),   s = 1/τ

(CLOOME multiplies by τ, which makes the loss scale-free; ``scale_loss=False`` drops it). Rows without a
negative are left out. InfoLOOB alone saturates less than InfoNCE but over-fits to few features; CLOOB/CLOOME
therefore first replace each embedding with its retrieval from a modern Hopfield memory of the batch,
``U = normalize(softmax(β x X^T) X)``, and compare image memory retrievals (by image vs by molecule) and
molecule memory retrievals (by molecule vs by image)::

    loss = ( InfoLOOB(U_x, U_y) + InfoLOOB(V_y, V_x) ) / 2

with ``U_x = hop(x; X)``, ``U_y = hop(y; X)``, ``V_y = hop(y; Y)``, ``V_x = hop(x; Y)``. Without Hopfield
(``hopfield_beta=None``) the loss is ``(InfoLOOB(x, y) + InfoLOOB(y, x)) / 2``. CLOOME's defaults are
``1/τ = 14.3`` (fixed) and ``β = 14.3``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from scibind.align.pairs import PairwiseObjective, positive_mask
from scibind.errors import ConfigError

__all__ = ["InfoLOOBObjective", "hopfield_retrieval", "infoloob"]


def hopfield_retrieval(state: torch.Tensor, stored: torch.Tensor, beta: float) -> torch.Tensor:
    """One modern-Hopfield update: ``normalize(softmax(β state @ stored.T) @ stored)`` per state row."""
    weights = torch.softmax(beta * state @ stored.T, dim=1)
    retrieved = weights @ stored
    return retrieved / retrieved.norm(dim=1, keepdim=True).clamp_min(1e-12)


def infoloob(
    x: torch.Tensor,
    y: torch.Tensor,
    scale: torch.Tensor | float,
    positives: torch.Tensor,
    tau_factor: bool = True,
) -> torch.Tensor:
    """One-directional InfoLOOB of queries ``x`` against keys ``y`` (see the module docstring).

    Args:
        x: ``[n, D]`` queries.
        y: ``[n, D]`` keys, row ``i`` the positive of query ``i``.
        scale: ``s = 1/τ``.
        positives: ``bool[n, n]``, the diagonal plus rows sharing a positive code.
        tau_factor: Multiply by ``τ`` (CLOOME).

    Returns:
        The mean over queries having at least one negative (0, still differentiable, when none has).
    """
    logits = scale * (x @ y.T)
    pos = positives.to(logits.dtype)
    positive_term = (logits * pos).sum(1) / pos.sum(1)
    negatives = logits.masked_fill(positives, float("-inf"))
    has_negative = ~positives.all(dim=1)
    if not bool(has_negative.any()):
        return logits.sum() * 0.0
    lse = torch.logsumexp(negatives[has_negative], dim=1)
    loss = (lse - positive_term[has_negative]).mean()
    return loss / scale if tau_factor else loss


class InfoLOOBObjective(PairwiseObjective):
    """CLOOME's InfoLOOB loss with Hopfield retrieval, per pair of views (``cell_painting/infoloob``).

    Args:
        pairs: Pairs of views; ``None`` = every pair of the views given.
        temperature: τ (CLOOME: ``1/14.3``).
        learn_temperature: Train ``logit_scale`` (CLOOME keeps it fixed).
        max_logit_scale: Clamp of ``1/τ``.
        hopfield_beta: Inverse temperature β of the Hopfield retrieval (CLOOME: 14.3); ``None`` = plain
            InfoLOOB on the embeddings.
        scale_loss: Multiply by τ as CLOOME does.
        positive_target: Target whose shared non-negative codes mark positives (e.g. ``compound``: wells of
            one compound share their molecule, so they must not be each other's negatives).
        gather: Gather across ranks under ``torch.distributed``.
    """

    def __init__(
        self,
        pairs: Sequence[Sequence[str]] | None = None,
        temperature: float = 1.0 / 14.3,
        learn_temperature: bool = False,
        max_logit_scale: float = 100.0,
        hopfield_beta: float | None = 14.3,
        scale_loss: bool = True,
        positive_target: str | None = None,
        gather: bool = True,
    ) -> None:
        super().__init__(
            pairs,
            temperature=temperature,
            learn_temperature=learn_temperature,
            max_logit_scale=max_logit_scale,
            positive_target=positive_target,
            gather=gather,
            tiled=False,
        )
        if hopfield_beta is not None and not hopfield_beta > 0:
            raise ConfigError(f"objective option 'hopfield_beta' must be > 0 or null, got {hopfield_beta}")
        self.hopfield_beta = None if hopfield_beta is None else float(hopfield_beta)
        self.scale_loss = bool(scale_loss)

    def pair_loss(self, za: torch.Tensor, zb: torch.Tensor, groups: torch.Tensor | None) -> torch.Tensor:
        """``(InfoLOOB(U_a, U_b) + InfoLOOB(V_b, V_a)) / 2`` over ``n`` rows (module docstring)."""
        scale = self.scale()
        positives = positive_mask(groups, za.shape[0]).to(za.device)
        if self.hopfield_beta is None:
            first = infoloob(za, zb, scale, positives, self.scale_loss)
            second = infoloob(zb, za, scale, positives, self.scale_loss)
        else:
            beta = self.hopfield_beta
            u_a, u_b = hopfield_retrieval(za, za, beta), hopfield_retrieval(zb, za, beta)
            v_b, v_a = hopfield_retrieval(zb, zb, beta), hopfield_retrieval(za, zb, beta)
            first = infoloob(u_a, u_b, scale, positives, self.scale_loss)
            second = infoloob(v_b, v_a, scale, positives, self.scale_loss)
        return (first + second) / 2
