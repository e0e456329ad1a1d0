"""Entropic optimal transport between token sets (Sinkhorn), batched over every pair of records.

For records ``i`` (tokens ``a_i1..a_iK``, unit vectors) and ``j`` (``b_j1..b_jR``) the cost is
``C_kr = 1 - <a_ik, b_jr>`` and the marginals are uniform over the real tokens (``mu_k = 1/|K_i|``,
``nu_r = 1/|R_j|``; padding gets mass 0). With the Gibbs kernel ``G = exp(-C/ε)`` Sinkhorn's iterations
(Cuturi 2013) are, starting from ``v = 1``::

    u ← mu / (G v),   v ← nu / (Gᵀ u)        (``n_iters`` times)
    P = diag(u) G diag(v)                    (the entropic transport plan; its columns sum to nu)

Two similarities come from a plan:

- :func:`ot_similarity`: ``S_ij = Σ_kr P_kr <a_ik, b_jr>``, the transport-weighted mean similarity (1 minus
  the transport cost), used for token↔atom alignment;
- :func:`multitoken_similarity`: each ``b`` token ``r`` (a motif) gets the *multi-token* representation
  ``u_r = Σ_k P_kr a_ik / Σ_k P_kr`` (the ``a`` tokens transported to it), and
  ``S_ij = (1/|R_j|) Σ_r <u_r/‖u_r‖, b_jr>`` (ORMA's multi-token↔motif alignment).

By default the plan is a constant for autograd (``differentiate_plan=False``): at the fixed point of the
entropic problem ``W_ε(C) = min_P <P, C> - ε H(P)`` the gradient of ``W_ε`` with respect to ``C`` is ``P``
itself (Danskin), so the gradient of ``S`` then is that of the entropic OT objective, at the cost of one
stored tensor; ``differentiate_plan=True`` back-propagates through the unrolled iterations instead.
The kernel is computed in the linear domain: with ``C ∈ [0, 2]`` and ``ε ≥ 0.05`` every entry of ``G`` is
at least ``exp(-40)``, far from float32 underflow. A record without real tokens scores 0 against everything.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from scibind.errors import ConfigError

__all__ = ["MIN_EPSILON", "multitoken_similarity", "ot_similarity", "sinkhorn_plan"]

MIN_EPSILON = 0.05
_TINY = 1e-30


def check_ot_options(epsilon: float, n_iters: int) -> None:
    """Raise :class:`~scibind.errors.ConfigError` for ``epsilon`` < :data:`MIN_EPSILON` or no iterations."""
    if not epsilon >= MIN_EPSILON:
        raise ConfigError(
            f"objective option 'epsilon' must be >= {MIN_EPSILON} (the Sinkhorn kernel exp(-cost/epsilon) "
            f"underflows below it), got {epsilon}"
        )
    if n_iters < 1:
        raise ConfigError(f"objective option 'n_iters' must be >= 1, got {n_iters}")


def sinkhorn_plan(
    sim: torch.Tensor, mask_a: torch.Tensor, mask_b: torch.Tensor, epsilon: float = 0.1, n_iters: int = 20
) -> torch.Tensor:
    """Entropic transport plans for a batch of similarity matrices.

    Args:
        sim: ``[..., K, R]`` cosine similarities (cost ``1 - sim``).
        mask_a: ``bool[..., K]`` real rows (broadcast against ``sim``'s leading dimensions).
        mask_b: ``bool[..., R]`` real columns.
        epsilon: Entropic regularisation ``ε``.
        n_iters: Sinkhorn iterations (each updates ``u`` then ``v``).

    Returns:
        ``[..., K, R]`` plans ``P`` (zero in padded rows and columns; all zero without real tokens).
    """
    ma = mask_a.to(sim.dtype)
    mb = mask_b.to(sim.dtype)
    mu = ma / ma.sum(-1, keepdim=True).clamp_min(1)
    nu = mb / mb.sum(-1, keepdim=True).clamp_min(1)
    gibbs = torch.exp((sim - 1) / epsilon) * ma[..., :, None] * mb[..., None, :]
    lead, (k, r) = gibbs.shape[:-2], gibbs.shape[-2:]
    flat = gibbs.reshape(-1, k, r)  # batched matrix-vector products: one bmm each way per iteration
    mu_f = mu.expand(*lead, k).reshape(-1, k)
    nu_f = nu.expand(*lead, r).reshape(-1, r)
    v = mb.expand(*lead, r).reshape(-1, r)
    u = mu_f
    for _ in range(n_iters):
        u = mu_f / torch.bmm(flat, v[:, :, None]).squeeze(-1).clamp_min(_TINY)
        v = nu_f / torch.bmm(u[:, None, :], flat).squeeze(1).clamp_min(_TINY)
    return (u[:, :, None] * flat * v[:, None, :]).reshape(gibbs.shape)


def _pairwise(
    a: torch.Tensor, b: torch.Tensor, mask_a: torch.Tensor, mask_b: torch.Tensor, rows: slice
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    sim = torch.einsum("ikd,jrd->ijkr", a[rows], b)  # [t, n_b, K, R]
    return sim, mask_a[rows][:, None, :], mask_b[None, :, :]


def _plan(
    sim: torch.Tensor, ma: torch.Tensor, mb: torch.Tensor, eps: float, iters: int, grad: bool
) -> torch.Tensor:
    if grad:
        return sinkhorn_plan(sim, ma, mb, eps, iters)
    with torch.no_grad():
        return sinkhorn_plan(sim.detach(), ma, mb, eps, iters)


def ot_similarity(
    a: torch.Tensor,
    b: torch.Tensor,
    mask_a: torch.Tensor,
    mask_b: torch.Tensor,
    epsilon: float = 0.1,
    n_iters: int = 20,
    differentiate_plan: bool = False,
    rows_per_tile: int = 16,
) -> torch.Tensor:
    """``S [n_a, n_b]``: ``Σ_kr P_kr <a_ik, b_jr>`` for every pair of records (see the module docstring).

    Args:
        a: ``[n_a, K, D]`` unit tokens (padding anywhere the mask is false).
        b: ``[n_b, R, D]`` unit tokens.
        mask_a: ``bool[n_a, K]``.
        mask_b: ``bool[n_b, R]``.
        epsilon: Entropic regularisation ``ε``.
        n_iters: Sinkhorn iterations.
        differentiate_plan: Back-propagate through the iterations (default: the plan is a constant).
        rows_per_tile: Records of ``a`` per ``[t, n_b, K, R]`` tile.
    """
    out = []
    for r0 in range(0, a.shape[0], rows_per_tile):
        sim, ma, mb = _pairwise(a, b, mask_a, mask_b, slice(r0, r0 + rows_per_tile))
        plan = _plan(sim, ma, mb, epsilon, n_iters, differentiate_plan)
        out.append((plan * sim).sum((-2, -1)))
    return torch.cat(out, 0)


def multitoken_similarity(
    a: torch.Tensor,
    b: torch.Tensor,
    mask_a: torch.Tensor,
    mask_b: torch.Tensor,
    epsilon: float = 0.1,
    n_iters: int = 20,
    differentiate_plan: bool = False,
    rows_per_tile: int = 16,
) -> torch.Tensor:
    """``S [n_a, n_b]``: multi-token (from ``a``) ↔ token (of ``b``, e.g. motifs) similarity.

    ``u_r = Σ_k P_kr a_ik / Σ_k P_kr``; ``S_ij = mean_r <u_r/‖u_r‖, b_jr>`` over the real tokens of ``b_j``.
    Arguments as :func:`ot_similarity`.
    """
    out = []
    count_b = mask_b.sum(1).clamp_min(1).to(a.dtype)  # [n_b]
    for r0 in range(0, a.shape[0], rows_per_tile):
        rows = slice(r0, r0 + rows_per_tile)
        sim, ma, mb = _pairwise(a, b, mask_a, mask_b, rows)
        plan = _plan(sim, ma, mb, epsilon, n_iters, differentiate_plan)
        weights = plan / plan.sum(-2, keepdim=True).clamp_min(_TINY)  # columns sum to 1 (or are 0)
        multi = F.normalize(torch.einsum("ijkr,ikd->ijrd", weights, a[rows]), dim=-1)  # [t, n_b, R, D]
        scores = (multi * b[None]).sum(-1) * mask_b[None].to(a.dtype)  # [t, n_b, R]
        out.append(scores.sum(-1) / count_b[None])
    return torch.cat(out, 0)
