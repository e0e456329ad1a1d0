"""Symile (Saporta et al., NeurIPS 2024): contrastive learning over any number of views with the MIP.

The multilinear inner product (MIP) of ``M`` vectors is ``[x, y, ..., z] = sum_d x_d y_d ... z_d``. For
each view in turn as the *anchor* ``x``, Symile's loss is the cross-entropy of picking a record's own
non-anchor views among negatives:

* ``negative_sampling="n"`` (O(N)): row ``i``'s candidates are the positive ``[x_i, y_i, ..., z_i]`` and
  ``N - 1`` negatives ``[x_i, y_{π_y(j)}, ..., z_{π_z(j)}]`` (``j != i``), one fresh random permutation per
  non-anchor view and anchor, drawn from torch's global RNG in the order of the ``symile`` package
  (anchors in view order, then the other views in order);
* ``negative_sampling="n_squared"`` (O(N^{M-1})): every combination of the non-anchor views' rows.

The loss is the mean over anchors of the mean over rows. Values and gradients equal the ``symile``
package's (``Symile(negative_sampling)([x, y, z], 1/τ)``) on the same normalised inputs; with ``"n"`` they
are equal when both draw the same permutations (same seed).

Unlike the package, which materialises the ``N x N`` logits of each anchor (``N x N^{M-1}`` for
``n_squared``) and lets autograd keep them, :class:`_AnchorLoss` walks the logits in tiles of at most
``tile_elements`` entries and computes the gradients in the same pass, so memory is ``O(N·D + tile)``.

Missing views. The paper keeps every record and lets each encoder represent an absent input (a learned
"missing" token, an imputed value plus an indicator). At the level of the objective that is
``missing="learned"``: an absent view's row is replaced by a learned unit vector of that view (so the MIP of
the record reduces to a learned weighting of the present views' product); records need at least
``min_present`` present views. ``missing="drop"`` (the default) uses only records where every view is
present.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from scibind.align.distributed import is_distributed
from scibind.align.multiview import MultiViewObjective
from scibind.align.output import LossOutput
from scibind.errors import ConfigError

__all__ = ["SymileObjective", "mip", "mip_similarity", "symile_anchor_loss"]

SCHEMES = ("n", "n_squared")
MISSING = ("drop", "learned")


def mip(*vectors: torch.Tensor) -> torch.Tensor:
    """Row-wise multilinear inner product of ``[n, D]`` tensors: ``[n]``."""
    out = vectors[0]
    for v in vectors[1:]:
        out = out * v
    return out.sum(-1)


def mip_similarity(candidates: torch.Tensor, queries: Sequence[torch.Tensor]) -> torch.Tensor:
    """Retrieval scores ``[Q, C]``: ``[candidate_c, query_1[q], ..., query_k[q]]``.

    Args:
        candidates: ``[C, D]`` embeddings of the view to retrieve.
        queries: ``[Q, D]`` embeddings of each other view of the ``Q`` queries.
    """
    product = queries[0]
    for q in queries[1:]:
        product = product * q
    return product @ candidates.T


def _products_without(mats: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """``[prod_{l != k} mats[l]]`` for every ``k``, with prefix/suffix products (no division)."""
    n = len(mats)
    ones = torch.ones_like(mats[0])
    prefix = [ones]
    for m in mats[:-1]:
        prefix.append(prefix[-1] * m)
    out = [ones] * n
    suffix = ones
    for k in range(n - 1, -1, -1):
        out[k] = prefix[k] * suffix
        suffix = suffix * mats[k]
    return out


class _Plan:
    """Non-tensor arguments of :class:`_AnchorLoss`."""

    def __init__(self, scheme: str, perms: list[torch.Tensor] | None, tile: int, grad: bool) -> None:
        self.scheme, self.perms, self.tile, self.grad = scheme, perms, tile, grad


def _loss_n(x, others, s, perms, tile, grad):
    """O(N) negatives, row tiles over the full ``N`` columns (each tile's rows are complete)."""
    n = x.shape[0]
    shuffled = [r[p] for r, p in zip(others, perms, strict=True)]
    prod_p = shuffled[0]
    for r in shuffled[1:]:
        prod_p = prod_p * r
    prod_q = others[0]
    for r in others[1:]:
        prod_q = prod_q * r
    pos = (x * prod_q).sum(1)
    rows_per_tile = max(1, min(n, tile // max(n, 1)))
    loss = x.new_zeros(())
    ds = x.new_zeros(())
    dx = torch.zeros_like(x) if grad else None
    dp = torch.zeros_like(x) if grad else None
    dq = torch.zeros_like(x) if grad else None
    for r0 in range(0, n, rows_per_tile):
        r1 = min(n, r0 + rows_per_tile)
        xb = x[r0:r1]
        rows = torch.arange(r1 - r0, device=x.device)
        cols = rows + r0
        m = xb @ prod_p.T
        m[rows, cols] = pos[r0:r1]
        logits = m * s
        lse = torch.logsumexp(logits, 1)
        loss = loss + (lse - logits[rows, cols]).sum()
        if not grad:
            continue
        g = logits.sub_(lse[:, None]).exp_()  # softmax, in place of the logits
        ds = ds + torch.dot(g.reshape(-1), m.reshape(-1)) - pos[r0:r1].sum()
        diag = (g[rows, cols] - 1) * s  # dL/dm of the positives, which use the unshuffled product
        g[rows, cols] = 0
        g.mul_(s)
        dx[r0:r1] = g @ prod_p + diag[:, None] * prod_q[r0:r1]
        dp.addmm_(g.T, xb)
        dq[r0:r1] = diag[:, None] * xb
    if not grad:
        return loss / n, None
    d_others = []
    for k, (without_p, without_q) in enumerate(
        zip(_products_without(shuffled), _products_without(list(others)), strict=True)
    ):
        d = dq * without_q
        d.index_add_(0, perms[k], dp * without_p)
        d_others.append(d)
    return loss / n, (ds / n, dx / n, [d / n for d in d_others])


def _loss_n_squared(x, others, s, tile, grad):
    """Every combination of non-anchor rows; two passes per row tile (log-sum-exp, then gradients)."""
    n = x.shape[0]
    k = len(others)
    n_cols = n**k
    rows_per_tile = max(1, min(n, tile // min(n_cols, tile)))
    cols_per_chunk = max(1, tile // rows_per_tile)
    strides = [n ** (k - 1 - j) for j in range(k)]

    def columns(c0: int, c1: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        flat = torch.arange(c0, c1, device=x.device)
        idx = [(flat // st) % n for st in strides]
        return idx, [r[i] for r, i in zip(others, idx, strict=True)]

    def product(mats: list[torch.Tensor]) -> torch.Tensor:
        out = mats[0]
        for m in mats[1:]:
            out = out * m
        return out

    prod_q = product(list(others))
    pos = (x * prod_q).sum(1)
    loss = x.new_zeros(())
    ds = x.new_zeros(())
    dx = torch.zeros_like(x) if grad else None
    d_others = [torch.zeros_like(r) for r in others] if grad else None
    for r0 in range(0, n, rows_per_tile):
        r1 = min(n, r0 + rows_per_tile)
        xb = x[r0:r1]
        lse = torch.full((r1 - r0,), float("-inf"), dtype=x.dtype, device=x.device)
        for c0 in range(0, n_cols, cols_per_chunk):
            _, mats = columns(c0, min(n_cols, c0 + cols_per_chunk))
            lse = torch.logaddexp(lse, torch.logsumexp((xb @ product(mats).T) * s, 1))
        loss = loss + (lse - s * pos[r0:r1]).sum()
        if not grad:
            continue
        for c0 in range(0, n_cols, cols_per_chunk):
            idx, mats = columns(c0, min(n_cols, c0 + cols_per_chunk))
            prod_c = product(mats)
            m = xb @ prod_c.T
            g = (m * s).sub_(lse[:, None]).exp_()
            ds = ds + torch.dot(g.reshape(-1), m.reshape(-1))
            g.mul_(s)
            dx[r0:r1] += g @ prod_c
            dprod = g.T @ xb
            for j, without in enumerate(_products_without(mats)):
                d_others[j].index_add_(0, idx[j], dprod * without)
        ds = ds - pos[r0:r1].sum()
        dx[r0:r1] -= s * prod_q[r0:r1]
    if not grad:
        return loss / n, None
    for j, without in enumerate(_products_without(list(others))):
        d_others[j] -= s * x * without
    return loss / n, (ds / n, dx / n, [d / n for d in d_others])


class _AnchorLoss(torch.autograd.Function):
    """Mean cross-entropy of one anchor; gradients are computed in the forward tiles and kept (``O(N·D)``)."""

    @staticmethod
    def forward(ctx, plan: _Plan, s: torch.Tensor, x: torch.Tensor, *others: torch.Tensor) -> torch.Tensor:
        if plan.scheme == "n":
            loss, grads = _loss_n(x, others, s, plan.perms, plan.tile, plan.grad)
        else:
            loss, grads = _loss_n_squared(x, others, s, plan.tile, plan.grad)
        ctx.grads = grads
        return loss

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        if ctx.grads is None:
            raise RuntimeError("symile: backward through a loss computed without gradients")
        ds, dx, d_others = ctx.grads
        ctx.grads = None
        return (None, grad_out * ds, grad_out * dx, *(grad_out * d for d in d_others))


def symile_anchor_loss(
    x: torch.Tensor,
    others: Sequence[torch.Tensor],
    scale: torch.Tensor,
    negative_sampling: str = "n",
    perms: Sequence[torch.Tensor] | None = None,
    tile_elements: int = 1 << 22,
) -> torch.Tensor:
    """Symile's cross-entropy for one anchor, averaged over rows (tiled; see the module docstring).

    Args:
        x: ``[N, D]`` anchor embeddings.
        others: ``[N, D]`` embeddings of each non-anchor view.
        scale: ``1/τ`` (a scalar tensor; may require grad).
        negative_sampling: ``"n"`` or ``"n_squared"``.
        perms: With ``"n"``, one permutation of ``range(N)`` per non-anchor view.
        tile_elements: Most logits held at once.
    """
    if negative_sampling not in SCHEMES:
        raise ConfigError(f"negative_sampling must be one of {SCHEMES}, got {negative_sampling!r}")
    if negative_sampling == "n" and (perms is None or len(perms) != len(others)):
        raise ValueError("negative_sampling='n' needs one permutation per non-anchor view")
    tensors = [scale, x, *others]
    grad = torch.is_grad_enabled() and any(t.requires_grad for t in tensors)
    s = scale.to(x.dtype)
    plan = _Plan(negative_sampling, None if perms is None else list(perms), int(tile_elements), grad)
    if not grad:
        with torch.no_grad():
            return _AnchorLoss.forward(_Ctx(), plan, s, x, *others)
    return _AnchorLoss.apply(plan, s, x, *others)


class _Ctx:
    """Stand-in context when no gradient is needed."""


class SymileObjective(MultiViewObjective):
    """Symile over the configured views (see the module docstring).

    Args:
        views: Views to contrast (``None``: every view given, sorted); order fixes the permutation draws.
        negative_sampling: ``"n"`` (O(N)) or ``"n_squared"`` (every combination), as in the package.
        temperature: Initial τ; logits are ``MIP / τ``.
        learn_temperature: Train ``logit_scale``.
        max_logit_scale: Clamp of ``1/τ``.
        missing: ``"drop"`` (records with every view present) or ``"learned"`` (a learned vector per view
            stands in for absent rows; needs ``views`` and ``embed_dim``).
        embed_dim: Width of the learned missing vectors (``missing="learned"``).
        min_present: With ``missing="learned"``, records need at least this many present views.
        tile_elements: Most logits held in memory at once.
        gather: Gather across ranks under ``torch.distributed`` (permutations are drawn on rank 0 and
            broadcast, so every rank computes the same global loss).
    """

    def __init__(
        self,
        views: Sequence[str] | None = None,
        negative_sampling: str = "n",
        temperature: float = 0.07,
        learn_temperature: bool = True,
        max_logit_scale: float = 100.0,
        missing: str = "drop",
        embed_dim: int | None = None,
        min_present: int = 2,
        tile_elements: int = 1 << 22,
        gather: bool = True,
    ) -> None:
        super().__init__(
            views,
            temperature=temperature,
            learn_temperature=learn_temperature,
            max_logit_scale=max_logit_scale,
            gather=gather,
        )
        if negative_sampling not in SCHEMES:
            raise ConfigError(
                f"objective option 'negative_sampling' must be one of {SCHEMES}, got {negative_sampling!r}"
            )
        if missing not in MISSING:
            raise ConfigError(f"objective option 'missing' must be one of {MISSING}, got {missing!r}")
        if tile_elements < 1:
            raise ConfigError(f"objective option 'tile_elements' must be >= 1, got {tile_elements}")
        self.negative_sampling = negative_sampling
        self.missing = missing
        self.min_present = int(min_present)
        self.tile_elements = int(tile_elements)
        if missing == "learned":
            if self.views is None or embed_dim is None:
                raise ConfigError(
                    "objective option missing='learned' needs 'views' (the view names) and 'embed_dim' (the "
                    "model's embed_dim) to create one learned missing vector per view"
                )
            gen = torch.Generator().manual_seed(0)
            self.missing_embeddings = nn.Parameter(
                torch.randn(len(self.views), int(embed_dim), generator=gen)
            )

    def forward(
        self,
        embeddings: Mapping[str, torch.Tensor],
        present: Mapping[str, torch.Tensor] | None = None,
        **targets: torch.Tensor,
    ) -> LossOutput:
        """Mean over anchors of Symile's cross-entropy (targets are ignored)."""
        views = self.select_views(embeddings)
        batch = self.prepare(embeddings, present, views)
        z, masks = batch.z, batch.masks
        stacked = torch.stack([masks[v] for v in views])
        if self.missing == "drop":
            rows = stacked.all(0)
        else:
            rows = stacked.sum(0) >= self.min_present
            fill = F.normalize(self.missing_embeddings.to(z[views[0]].dtype), dim=-1)
            z = {v: torch.where(masks[v][:, None], z[v], fill[i]) for i, v in enumerate(views)}
        n = int(rows.sum())
        if n < 2:
            zero = self.zero_loss(*z.values())
            parts = {f"anchor:{v}": zero.detach() for v in views}
            return LossOutput(zero, {**parts, **self.temperature_parts()})
        if n < rows.shape[0]:
            z = {v: t[rows] for v, t in z.items()}
        scale = self.scale()
        losses = {}
        for i, v in enumerate(views):
            others = [z[u] for j, u in enumerate(views) if j != i]
            perms = self._perms(n, len(others), z[v].device) if self.negative_sampling == "n" else None
            losses[f"anchor:{v}"] = symile_anchor_loss(
                z[v], others, scale, self.negative_sampling, perms, self.tile_elements
            )
        loss = torch.stack(list(losses.values())).mean()
        parts = {k: t.detach() for k, t in losses.items()}
        return LossOutput(loss, {**parts, **self.temperature_parts()})

    def _perms(self, n: int, count: int, device: torch.device) -> list[torch.Tensor]:
        # The package draws ``torch.randperm(n)`` on the CPU's global generator, one per non-anchor view.
        perms = [torch.randperm(n).to(device) for _ in range(count)]
        if self.gather and is_distributed():
            import torch.distributed as dist

            for p in perms:
                dist.broadcast(p, 0)
        return perms
