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
``n_squared``) and lets autograd keep them, :func:`symile_loss` walks the logits in tiles of at most
``tile_elements`` entries and computes the gradients in the same pass, adding them into one gradient
buffer per view, so memory is ``O(N·D + tile)``.

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

from scibind.align.distributed import is_distributed, rank_rows, sum_of_shards
from scibind.align.multiview import MultiViewObjective
from scibind.align.output import LossOutput
from scibind.align.tiled import row_dot
from scibind.errors import ConfigError

__all__ = ["SymileObjective", "mip", "mip_similarity", "symile_loss"]

SCHEMES = ("n", "n_squared")
MISSING = ("drop", "learned")
DEFAULT_TILE = 1 << 24
"""Logits per tile (64 MiB in float32): tiles of 1,024 rows at N = 16,384 run the products within 5 % of
untiled ones, where 256-row tiles (4 Mi logits) lose 10 %."""


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


def _product(mats: Sequence[torch.Tensor]) -> torch.Tensor:
    """Elementwise product of ``[n, D]`` tensors (a new tensor)."""
    out = mats[0].clone()
    for m in mats[1:]:
        out.mul_(m)
    return out


def _permuted_product(
    others, perms, skip: int | None = None, out: torch.Tensor | None = None
) -> torch.Tensor:
    """``prod_k others[k][perms[k]]`` over every ``k != skip``, one gather at a time."""
    ks = [k for k in range(len(others)) if k != skip]
    out = (
        torch.index_select(others[ks[0]], 0, perms[ks[0]], out=out)
        if out is not None
        else others[ks[0]][perms[ks[0]]]
    )
    for k in ks[1:]:
        out.mul_(others[k][perms[k]])
    return out


def _anchor_n(x, others, s, perms, tile, dx, d_others, weight, rows):
    """O(N) negatives of one anchor; returns its summed cross-entropy and, with gradients, ``dL/ds``.

    Row tiles span all ``N`` columns, so each tile's log-sum-exp is complete and its softmax gives the
    gradients at once: the logits are made, used and dropped tile by tile (one ``exp`` per logit, in place).
    ``dx`` and ``d_others`` (``None`` without gradients) are the views' gradient buffers; this anchor adds
    ``weight`` times its gradient to them in place. Besides them it holds two ``[N, D]`` tensors (the
    candidates' product and its gradient) and one scratch tensor. Only the anchor rows ``rows = (lo, hi)``
    take part (their logits span every column).
    """
    n = x.shape[0]
    # Candidates: row j is the product of the non-anchor views at their permuted rows; the positives
    # (the diagonal) use the unpermuted product q, formed tile by tile.
    prod_p = _permuted_product(others, perms)
    rows_per_tile = max(1, min(n, tile // max(n, 1)))
    grad = dx is not None
    total = x.new_zeros(())
    ds = x.new_zeros(())
    dp = torch.zeros_like(x) if grad else None
    diag = x.new_zeros(n) if grad else None  # dL/dlogit_ii (0 outside ``rows``)
    lo, hi = rows
    for r0 in range(lo, hi, rows_per_tile):
        r1 = min(hi, r0 + rows_per_tile)
        xb = x[r0:r1]
        prod_q = _product([o[r0:r1] for o in others])
        diag_r = torch.arange(r1 - r0, device=x.device)  # the positives: tile row i, column r0 + i
        diag_c = diag_r + r0
        logits = (xb * s) @ prod_p.T
        pos_logit = s * (xb * prod_q).sum(1)
        logits[diag_r, diag_c] = pos_logit
        # log-sum-exp and softmax with one exp, in place of the logits.
        row_max = logits.amax(1)
        e = logits.sub_(row_max[:, None]).exp_()
        sums = e.sum(1)
        total += (sums.log() + row_max - pos_logit).sum()
        if not grad:
            continue
        # The softmax e / sums is dL/dlogits + onehot; its row scale 1 / sums is applied to the small
        # [rows, D] operands and results instead of to the tile (one pass over the logits fewer).
        inv = sums.reciprocal_()
        diag[r0:r1] = e[diag_r, diag_c] * inv - 1
        e[diag_r, diag_c] = 0
        gx = (e @ prod_p).mul_(inv[:, None])  # dL/dx / s of the negatives ...
        gx.addcmul_(prod_q, diag[r0:r1, None])  # ... and of the positive
        # dL/ds = sum_ij dL/dlogit_ij · logit_ij / s = sum_i x_i · gx_i
        ds += torch.dot(xb.reshape(-1), gx.reshape(-1))
        dx[r0:r1].add_(gx, alpha=float(weight * s))
        dp.addmm_(e.T, xb * inv[:, None])
    if not grad:
        return total, None
    del prod_p
    dp.mul_(weight * s)
    diag.mul_(weight * s)
    scratch = torch.empty_like(x)
    for k in range(len(others)):
        # Positives: d/d others[k] of x_i · prod_l others[l]_i, times dL/dlogit_ii.
        torch.mul(x, diag[:, None], out=scratch)
        for j in range(len(others)):
            if j != k:
                scratch.mul_(others[j])
        d_others[k].add_(scratch)
        # Negatives: candidate j holds others[k][perms[k][j]].
        if len(others) == 1:
            d_others[k].index_add_(0, perms[k], dp)
        else:
            _permuted_product(others, perms, skip=k, out=scratch).mul_(dp)
            d_others[k].index_add_(0, perms[k], scratch)
    return total, ds


def _anchor_n_squared(x, others, s, tile, dx, d_others, weight, rows):
    """Every combination of non-anchor rows; two passes per row tile (log-sum-exp, then gradients).

    Only the anchor rows ``rows = (lo, hi)`` take part.
    """
    n = x.shape[0]
    k = len(others)
    n_cols = n**k
    rows_per_tile = max(1, min(n, tile // min(n_cols, tile)))
    cols_per_chunk = max(1, tile // rows_per_tile)
    strides = [n ** (k - 1 - j) for j in range(k)]
    grad = dx is not None

    def columns(c0: int, c1: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        flat = torch.arange(c0, c1, device=x.device)
        idx = [(flat // st) % n for st in strides]
        return idx, [r[i] for r, i in zip(others, idx, strict=True)]

    prod_q = _product(others)
    pos = row_dot(x, prod_q)
    total = x.new_zeros(())
    ds = x.new_zeros(())
    lo, hi = rows
    for r0 in range(lo, hi, rows_per_tile):
        r1 = min(hi, r0 + rows_per_tile)
        xb = x[r0:r1]
        lse = torch.full((r1 - r0,), float("-inf"), dtype=x.dtype, device=x.device)
        for c0 in range(0, n_cols, cols_per_chunk):
            _, mats = columns(c0, min(n_cols, c0 + cols_per_chunk))
            lse = torch.logaddexp(lse, torch.logsumexp((xb @ _product(mats).T) * s, 1))
        total += (lse - s * pos[r0:r1]).sum()
        if not grad:
            continue
        for c0 in range(0, n_cols, cols_per_chunk):
            idx, mats = columns(c0, min(n_cols, c0 + cols_per_chunk))
            prod_c = _product(mats)
            m = xb @ prod_c.T
            g = (m * s).sub_(lse[:, None]).exp_()
            ds += torch.dot(g.reshape(-1), m.reshape(-1))
            g.mul_(s * weight)
            dx[r0:r1] += g @ prod_c
            dprod = g.T @ xb
            for j, without in enumerate(_products_without(mats)):
                d_others[j].index_add_(0, idx[j], dprod * without)
        ds -= pos[r0:r1].sum()
        dx[r0:r1] -= (s * weight) * prod_q[r0:r1]
    if not grad:
        return total, None
    for j, without in enumerate(_products_without([o[lo:hi] for o in others])):
        d_others[j][lo:hi] -= (s * weight) * x[lo:hi] * without
    return total, ds


class _SymileLoss(torch.autograd.Function):
    """Mean over anchors of the mean cross-entropy; gradients are accumulated in the forward tiles.

    Memory is the views' gradient buffers plus a few ``[N, D]`` temporaries of one anchor and one tile of
    logits: no per-anchor gradients, no ``N x N`` matrix.
    """

    @staticmethod
    def forward(ctx, plan: dict, s: torch.Tensor, *views: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        anchors, scheme, perms, tile = plan["anchors"], plan["scheme"], plan["perms"], plan["tile"]
        grad = plan["grad"]
        rows = plan["rows"] or (0, views[0].shape[0])
        n = views[0].shape[0]
        weight = 1.0 / (len(anchors) * n)
        dz = [torch.zeros_like(v) for v in views] if grad else None
        per_anchor = views[0].new_zeros(len(anchors))
        ds = views[0].new_zeros(())
        for a, anchor in enumerate(anchors):
            x = views[anchor]
            rest = [i for i in range(len(views)) if i != anchor]
            others = [views[i] for i in rest]
            dx = dz[anchor] if grad else None
            d_others = [dz[i] for i in rest] if grad else None
            if scheme == "n":
                loss, d_s = _anchor_n(x, others, s, perms[a], tile, dx, d_others, weight, rows)
            else:
                loss, d_s = _anchor_n_squared(x, others, s, tile, dx, d_others, weight, rows)
            per_anchor[a] = loss / n
            if grad:
                ds += d_s
        if grad:
            ctx.grads = (ds * weight, dz)
            ctx.mark_non_differentiable(per_anchor)
        return per_anchor.mean(), per_anchor

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out: torch.Tensor, _grad_parts: torch.Tensor):
        if getattr(ctx, "grads", None) is None:
            raise RuntimeError(
                "symile computes its gradients during forward and hands them out once; backward through "
                "it a second time (retain_graph=True) is not supported"
            )
        ds, dz = ctx.grads
        ctx.grads = None
        return (None, ds * grad_out, *(d.mul_(grad_out) for d in dz))


def symile_loss(
    views: Sequence[torch.Tensor],
    scale: torch.Tensor,
    negative_sampling: str = "n",
    perms: Sequence[Sequence[torch.Tensor]] | None = None,
    tile_elements: int = DEFAULT_TILE,
    rows: tuple[int, int] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Symile's loss: the mean over anchors of each anchor's cross-entropy, averaged over rows (tiled).

    Args:
        views: ``[N, D]`` embeddings of each view (L2-normalised by the caller, as the package expects).
        scale: ``1/τ`` (a scalar tensor; may require grad).
        negative_sampling: ``"n"`` or ``"n_squared"``.
        perms: With ``"n"``, for each anchor (view order), one permutation of ``range(N)`` per non-anchor
            view (in view order), as the package draws them.
        tile_elements: Most logits held at once.
        rows: ``(lo, hi)``: only the terms of these anchor rows (still divided by ``N``, against every
            candidate). The shards of a partition of ``range(N)`` sum to the loss and to its gradients;
            under ``torchrun`` each rank computes one (see :class:`SymileObjective`). ``None``: all rows.

    Returns:
        ``(loss, per_anchor)``: the differentiable mean and the detached ``[M]`` loss of each anchor.
    """
    if negative_sampling not in SCHEMES:
        raise ConfigError(f"negative_sampling must be one of {SCHEMES}, got {negative_sampling!r}")
    m = len(views)
    if negative_sampling == "n" and (perms is None or len(perms) != m or any(len(p) != m - 1 for p in perms)):
        raise ValueError("negative_sampling='n' needs, per anchor, one permutation per non-anchor view")
    grad = torch.is_grad_enabled() and any(t.requires_grad for t in [scale, *views])
    s = scale.to(views[0].dtype)
    plan = {
        "anchors": list(range(m)),
        "scheme": negative_sampling,
        "perms": None if perms is None else [list(p) for p in perms],
        "tile": int(tile_elements),
        "grad": grad,
        "rows": rows,
    }
    if not grad:
        with torch.no_grad():
            return _SymileLoss.forward(_Ctx(), plan, s.detach(), *views)
    return _SymileLoss.apply(plan, s, *views)


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
        gather: Gather across ranks under ``torch.distributed``: permutations are drawn on rank 0 and
            broadcast, and each rank computes the terms of its ``1/W`` share of the anchor rows
            (:meth:`_sharded`; same loss and gradients as one process with the global batch).
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
        tile_elements: int = DEFAULT_TILE,
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
        device = z[views[0]].device
        perms = None
        if self.negative_sampling == "n":
            perms = [self._perms(n, len(views) - 1, device) for _ in views]
        tensors = [z[v] for v in views]
        if self.gather and is_distributed():
            loss, per_anchor = self._sharded(tensors, scale, perms)
        else:
            loss, per_anchor = symile_loss(tensors, scale, self.negative_sampling, perms, self.tile_elements)
        parts = {f"anchor:{v}": per_anchor[i].detach() for i, v in enumerate(views)}
        return LossOutput(loss, {**parts, **self.temperature_parts()})

    def _sharded(
        self, tensors: list[torch.Tensor], scale: torch.Tensor, perms: list[list[torch.Tensor]] | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The global loss, each rank computing the terms of its ``1/W`` share of the anchor rows.

        See :mod:`scibind.align.distributed` (sharded losses): same value and gradients as every rank
        computing the whole loss, at ``1/W`` of the cost.
        """
        import torch.distributed as dist

        rows = rank_rows(tensors[0].shape[0])
        local, per_anchor = symile_loss(
            tensors, scale, self.negative_sampling, perms, self.tile_elements, rows=rows
        )
        dist.all_reduce(per_anchor)
        return sum_of_shards(local), per_anchor

    def _perms(self, n: int, count: int, device: torch.device) -> list[torch.Tensor]:
        # The package draws ``torch.randperm(n)`` on the CPU's global generator, one per non-anchor view.
        perms = [torch.randperm(n).to(device) for _ in range(count)]
        if self.gather and is_distributed():
            import torch.distributed as dist

            for p in perms:
                dist.broadcast(p, 0)
        return perms
