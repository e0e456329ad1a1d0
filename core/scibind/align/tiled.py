"""Exact, memory-bounded (tiled) contrastive losses: the ``B x B`` logits are never materialised.

Both losses work on square blocks of the logit matrix ``S = s * za @ zb.T`` (``s = 1/τ``): a block is
computed, used and dropped. Memory is ``O(B·D + block²)`` instead of ``O(B²)``; the results are the dense
losses' up to floating-point summation order.

:func:`row_col_logsumexp` (InfoNCE)
    Returns every row's and every column's log-sum-exp in one pass over the blocks. Its custom backward
    recomputes each block and turns the incoming gradients ``gr`` (rows) and ``gc`` (columns) into
    ``dS_ij = gr_i softmax_row(S)_ij + gc_j softmax_col(S)_ij`` block by block. The cross-entropies are
    ``lse - (target logit)``; the target terms (diagonal, group means, label smoothing) are sums over
    rows that need no ``B x B`` matrix, so :class:`scibind.align.clip.ClipObjective` writes them with plain
    autograd.

:func:`sigmoid_pair_sum` (SigLIP)
    Returns ``sum_ij -log sigmoid(y_ij · (s za_i·zb_j + b))``. The gradient of each element depends on that
    element only, so forward and backward are fused: the single pass over the blocks also accumulates
    the gradients of ``za``, ``zb``, ``s`` and ``b`` (``O(B·D)``), and backward only scales them.

Shifts. When every logit is provably within ``±m`` (``m = s·max|za|·max|zb|``, the scale for unit
rows) and ``exp(-2m)`` is a normal number of the dtype (``m ≤ 40`` in float32, the case for CLIP's
initial ``s = 14.3`` and SigLIP's ``s = 10``; always in float64), InfoNCE uses the fixed shift ``m``: one
``exp`` per element in forward and one in backward, and no running maxima. Otherwise it keeps running
row and column maxima (the flash-attention recurrence), which is exact for any scale.

Normalisation. With ``normalize=True`` (what ``core/clip`` and ``core/siglip`` use) the kernels take the raw
rows and L2-normalise each block as it is formed; only the inverse row norms are kept, and the gradients
are projected onto the unit spheres in place at the end. The objectives therefore never hold normalised
``[B, D]`` copies: their memory is the features' gradients plus the blocks.

Row shards. Under ``torch.distributed`` the objectives give each rank the blocks of its ``1/W`` share of
the rows (``rows=``); InfoNCE then all-reduces its partial column sums (``reduce_cols``) so every column's
log-sum-exp is complete, and all-reduces the column gradients in backward
(:mod:`scibind.align.distributed` explains why the gradients stay exact).

Autocast is disabled inside: blocks are computed and accumulated in the inputs' dtype (float32 or
float64), whatever precision the encoders ran in.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F

__all__ = [
    "DEFAULT_MEMORY_BUDGET_MB",
    "auto_block_size",
    "infonce_terms",
    "l2_normalize",
    "no_autocast",
    "row_col_logsumexp",
    "row_dot",
    "sigmoid_pair_sum",
]

# Default MiB of block temporaries per device type. On CPU small blocks are faster (they stay in the
# caches, and 512 x 512 float32 matmuls already run at the BLAS peak); GPUs want large ones.
DEFAULT_MEMORY_BUDGET_MB = {"cpu": 4.0, "cuda": 256.0}
# Block-sized temporaries alive at once (a block, the exp / sigmoid output, the gradient block, slack).
_BLOCK_TEMPORARIES = 4
_MIN_BLOCK = 64
# Largest fixed shift m with exp(-2m) still a normal number (float32: exp(-87.3) is the smallest normal).
_FIXED_SHIFT_LIMIT = {torch.float32: 40.0, torch.float64: 350.0}


def auto_block_size(
    dtype: torch.dtype, device: torch.device | str = "cpu", memory_budget_mb: float | None = None
) -> int:
    """The block side that keeps one pass's ``block x block`` temporaries within a memory budget.

    Args:
        dtype: Dtype the blocks are computed in.
        device: Where they are computed; it selects the default budget.
        memory_budget_mb: MiB for the block temporaries; ``None``: :data:`DEFAULT_MEMORY_BUDGET_MB` of the
            device type (4 MiB on CPU, so blocks stay in cache: 512 in float32; 256 MiB on GPUs: 4096).

    Returns:
        A multiple of 64, at least 64.
    """
    kind = torch.device(device).type
    if memory_budget_mb is None:
        memory_budget_mb = DEFAULT_MEMORY_BUDGET_MB.get(kind, DEFAULT_MEMORY_BUDGET_MB["cuda"])
    itemsize = torch.empty((), dtype=dtype).element_size()
    side = math.isqrt(int(memory_budget_mb * 2**20) // (_BLOCK_TEMPORARIES * itemsize))
    return max(_MIN_BLOCK, side // _MIN_BLOCK * _MIN_BLOCK)


def no_autocast(device: torch.device) -> contextlib.AbstractContextManager[Any]:
    """A context that turns autocast off on ``device`` (a no-op for devices autocast does not know)."""
    try:
        return torch.autocast(device_type=device.type, enabled=False)
    except RuntimeError:  # pragma: no cover - device types without autocast support
        return contextlib.nullcontext()


def _max_norm(z: torch.Tensor, inv: torch.Tensor | None) -> float:
    """An upper bound of the row norms of ``z`` (of its rows normalised by ``inv``, at most 1, when given)."""
    if not z.shape[0]:
        return 0.0
    if inv is not None:
        return 1.0  # x / max(|x|, eps) has norm <= 1: no second pass over the rows
    return float(torch.linalg.vector_norm(z, dim=1).max())


def _fixed_shift(
    za: torch.Tensor,
    zb: torch.Tensor,
    scale: torch.Tensor,
    inv_a: torch.Tensor | None = None,
    inv_b: torch.Tensor | None = None,
) -> float | None:
    """The bound ``m >= |s · za_i·zb_j|`` (Cauchy-Schwarz) when it is small enough to shift by; else None."""
    limit = _FIXED_SHIFT_LIMIT.get(za.dtype)
    bound = abs(float(scale)) * _max_norm(za, inv_a) * _max_norm(zb, inv_b)
    if limit is None or not bound <= limit:
        return None
    return bound


def _inverse_norms(x: torch.Tensor, eps: float = 1e-12) -> tuple[torch.Tensor, torch.Tensor]:
    """``(1 / max(|x_i|, eps), |x_i| > eps)`` per row: ``x_i`` times the first is ``F.normalize(x)_i``."""
    norm = torch.linalg.vector_norm(x, dim=1)
    return norm.clamp_min(eps).reciprocal_(), norm > eps


def row_dot(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``(x * y).sum(1)`` for ``[n, D]`` tensors, by chunks of ~256 Ki elements (no ``[n, D]`` product)."""
    out = x.new_empty(x.shape[0])
    chunk = max(1, 2**18 // max(1, x.shape[1]))
    for i0, i1 in _blocks(x.shape[0], chunk):
        torch.sum(x[i0:i1] * y[i0:i1], dim=1, out=out[i0:i1])
    return out


def _row_block(x: torch.Tensor, inv: torch.Tensor | None, i0: int, i1: int) -> torch.Tensor:
    """Rows ``i0:i1`` of ``x``, normalised on the fly when ``inv`` (inverse row norms) is given."""
    return x[i0:i1] if inv is None else x[i0:i1] * inv[i0:i1, None]


def _normalize_backward_(
    grad: torch.Tensor, x: torch.Tensor, inv: torch.Tensor, unclamped: torch.Tensor
) -> None:
    """Turn ``grad`` = dL/dz for ``z = x · inv`` (row-normalised ``x``) into dL/dx, in place.

    ``d(x/|x|) = (g - z (z·g)) / |x|``; rows with ``|x| <= eps`` were divided by the constant ``eps``.
    """
    z_dot_g = row_dot(x, grad).mul_(inv).mul_(unclamped)
    grad.addcmul_(x, (z_dot_g * inv)[:, None], value=-1).mul_(inv[:, None])


class _L2Normalize(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, eps: float) -> torch.Tensor:
        norm = torch.linalg.vector_norm(x, dim=-1, keepdim=True)
        denom = norm.clamp_min(eps)
        z = x / denom
        ctx.save_for_backward(z, denom, norm > eps)
        return z

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:
        z, denom, unclamped = ctx.saved_tensors
        # d(x/|x|) = (g - z (z·g)) / |x|; rows with |x| <= eps were divided by the constant eps.
        dot = row_dot(z, grad)[:, None] * unclamped
        return torch.addcmul(grad, z, dot, value=-1).div_(denom), None


def l2_normalize(x: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """``torch.nn.functional.normalize(x, dim=-1)`` for ``[n, D]`` rows, with a leaner backward.

    Autograd's backward of ``x / max(|x|, eps)`` allocates about three ``[n, D]`` temporaries; this one
    allocates only its result. Once-differentiable (the dense objectives keep ``F.normalize``).
    """
    return _L2Normalize.apply(x, float(eps))


def _blocks(n: int, block: int, start: int = 0) -> list[tuple[int, int]]:
    """``[(i0, i1), ...]`` covering ``range(start, n)`` in steps of ``block``."""
    return [(i, min(i + block, n)) for i in range(start, n, block)]


class _RowColLogSumExp(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any,
        za: torch.Tensor,
        zb: torch.Tensor,
        scale: torch.Tensor,
        block: int,
        normalize: bool,
        rows: tuple[int, int],
        reduce_cols: bool,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        with no_autocast(za.device):
            n, m = za.shape[0], zb.shape[0]
            lo, hi = rows
            # Normalising on the fly: only the inverse row norms are kept, never normalised [n, D] copies.
            (inv_a, keep_a), (inv_b, keep_b) = (
                (_inverse_norms(za), _inverse_norms(zb)) if normalize else ((None, None), (None, None))
            )
            shift = _fixed_shift(za, zb, scale, inv_a, inv_b)
            row_blocks, cols = _blocks(hi, block, start=lo), _blocks(m, block)
            r = za.new_zeros(n)  # rows outside ``rows`` stay 0 (not computed)
            if shift is not None:
                row_sum = za.new_zeros(n)
                col_sum = za.new_zeros(m)
                neg = za.new_tensor(-shift)
                for i0, i1 in row_blocks:
                    a = _row_block(za, inv_a, i0, i1) * scale  # S = (s·za) @ zb.T, one row block at a time
                    for j0, j1 in cols:
                        e = torch.addmm(neg, a, _row_block(zb, inv_b, j0, j1).T).exp_()
                        row_sum[i0:i1] += e.sum(1)
                        col_sum[j0:j1] += e.sum(0)
                if reduce_cols:  # every rank's rows add to each column's sum (the shift is the same)
                    dist.all_reduce(col_sum)
                r[lo:hi] = row_sum[lo:hi].log_().add_(shift)
                c = col_sum.log_().add_(shift)
            else:
                row_max = za.new_full((n,), -math.inf)
                row_sum = za.new_zeros(n)
                col_max = za.new_full((m,), -math.inf)
                col_sum = za.new_zeros(m)
                for i0, i1 in row_blocks:
                    a = _row_block(za, inv_a, i0, i1) * scale
                    for j0, j1 in cols:
                        s = a @ _row_block(zb, inv_b, j0, j1).T
                        _online_update(s, 1, row_max[i0:i1], row_sum[i0:i1])
                        _online_update(s, 0, col_max[j0:j1], col_sum[j0:j1])
                if reduce_cols:
                    col_max, col_sum = _reduce_running(col_max, col_sum)
                r[lo:hi] = row_sum[lo:hi].log_().add_(row_max[lo:hi])
                c = col_sum.log_().add_(col_max)
            # The diagonal za_i·zb_i (unscaled): its gradient is folded into the block gradients in place,
            # which saves the two [n, D] temporaries autograd would allocate for a separate product.
            d = row_dot(za, zb) if n == m else za.new_zeros(0)
            if normalize and n == m:
                d.mul_(inv_a).mul_(inv_b)
        ctx.block, ctx.shift, ctx.normalize, ctx.rows, ctx.reduce_cols = (
            block,
            shift,
            normalize,
            rows,
            reduce_cols,
        )
        norms = (inv_a, keep_a, inv_b, keep_b) if normalize else ()
        ctx.save_for_backward(za, zb, scale, r, c, *norms)
        return r, c, d

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(
        ctx: Any, grad_r: torch.Tensor, grad_c: torch.Tensor, grad_d: torch.Tensor
    ) -> tuple[Any, ...]:
        za, zb, scale, r, c, *norms = ctx.saved_tensors
        inv_a, keep_a, inv_b, keep_b = norms if ctx.normalize else (None, None, None, None)
        block, shift = ctx.block, ctx.shift
        lo, hi = ctx.rows
        with no_autocast(za.device):
            n, m = za.shape[0], zb.shape[0]
            if ctx.reduce_cols:
                # Each column's log-sum-exp depends on every rank's rows: every rank's column gradients
                # act on this rank's blocks.
                grad_c = grad_c.clone()
                dist.all_reduce(grad_c)
            acc_a = torch.zeros_like(za)  # sum_j dS_ij zb_j
            acc_b = torch.zeros_like(zb)  # sum_i dS_ij za_i
            if shift is not None:
                # softmax_row(S)_ij = exp(S_ij - m) * exp(m - r_i); exp(m - r_i) <= exp(2m) is finite.
                u = grad_r * torch.exp(shift - r)
                v = grad_c * torch.exp(shift - c)
                neg = za.new_tensor(-shift)
            for i0, i1 in _blocks(hi, block, start=lo):
                a = _row_block(za, inv_a, i0, i1)
                a_scaled = a * scale
                for j0, j1 in _blocks(m, block):
                    b = _row_block(zb, inv_b, j0, j1)
                    if shift is not None:
                        e = torch.addmm(neg, a_scaled, b.T).exp_()
                        g = (u[i0:i1, None] + v[None, j0:j1]).mul_(e)
                    else:
                        s = a_scaled @ b.T
                        g = torch.exp(s - r[i0:i1, None]).mul_(grad_r[i0:i1, None])
                        g += torch.exp(s.sub_(c[None, j0:j1])).mul_(grad_c[None, j0:j1])
                    acc_a[i0:i1].addmm_(g, b)
                    acc_b[j0:j1].addmm_(g.T, a)
            grad_scale = _dot_normalized(za, inv_a, acc_a).reshape(scale.shape)
            acc_a.mul_(scale)
            acc_b.mul_(scale)
            if n == m:
                acc_a.addcmul_(zb, grad_d[:, None] if inv_b is None else (grad_d * inv_b)[:, None])
                acc_b.addcmul_(za, grad_d[:, None] if inv_a is None else (grad_d * inv_a)[:, None])
            if ctx.normalize:
                _normalize_backward_(acc_a, za, inv_a, keep_a)
                _normalize_backward_(acc_b, zb, inv_b, keep_b)
            return acc_a, acc_b, grad_scale, None, None, None, None


def _reduce_running(run_max: torch.Tensor, run_sum: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Combine every rank's running maxima and sums of ``exp`` (``sum_k exp(max_k - max) · sum_k``)."""
    new_max = run_max.clone()
    dist.all_reduce(new_max, op=dist.ReduceOp.MAX)
    # A rank without rows has max -inf: its factor is 0 (exp(-inf - finite)); never nan (-inf - -inf).
    factor = torch.where(run_max > -math.inf, torch.exp(run_max - new_max), torch.zeros_like(run_max))
    run_sum = run_sum * factor
    dist.all_reduce(run_sum)
    return new_max, run_sum


def _dot_normalized(x: torch.Tensor, inv: torch.Tensor | None, y: torch.Tensor) -> torch.Tensor:
    """``sum_i (x_i · inv_i) · y_i`` (``x`` row-normalised by ``inv`` when given), without a copy of ``x``."""
    if inv is None:
        return torch.dot(x.reshape(-1), y.reshape(-1))
    return torch.dot(row_dot(x, y), inv)


def _online_update(s: torch.Tensor, dim: int, run_max: torch.Tensor, run_sum: torch.Tensor) -> None:
    """Fold one block into running maxima and sums of ``exp`` along ``dim`` (views updated in place)."""
    new_max = torch.maximum(run_max, s.amax(dim))
    shifted = s - (new_max[:, None] if dim == 1 else new_max[None, :])
    run_sum.mul_(torch.exp(run_max - new_max)).add_(shifted.exp_().sum(dim))
    run_max.copy_(new_max)


def row_col_logsumexp(
    za: torch.Tensor, zb: torch.Tensor, scale: torch.Tensor, block: int, *, normalize: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-sum-exp of every row and every column of ``S = scale · za @ zb.T``, without materialising ``S``.

    Args:
        za: ``[n, D]`` row embeddings.
        zb: ``[m, D]`` column embeddings (same dtype and device).
        scale: 0-d tensor, the logit scale ``s``.
        block: Side of the square blocks.
        normalize: L2-normalise the rows of ``za`` and ``zb`` first, block by block (``F.normalize``'s
            values and gradients without its two normalised ``[n, D]`` copies).

    Returns:
        ``(r, c)``: ``r[i] = logsumexp_j S_ij`` (``[n]``) and ``c[j] = logsumexp_i S_ij`` (``[m]``),
        differentiable with respect to ``za``, ``zb`` and ``scale`` (the backward recomputes the blocks).
    """
    r, c, _ = _RowColLogSumExp.apply(
        za, zb, scale.to(za.dtype), int(block), bool(normalize), (0, za.shape[0]), False
    )
    return r, c


def infonce_terms(
    za: torch.Tensor,
    zb: torch.Tensor,
    scale: torch.Tensor,
    block: int,
    *,
    normalize: bool = False,
    rows: tuple[int, int] | None = None,
    reduce_cols: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`row_col_logsumexp` plus the diagonal ``d[i] = za_i·zb_i`` (unscaled), for ``n == m``.

    The three are what InfoNCE with one positive per row needs: its loss is
    ``(mean(r - s·d) + mean(c - s·d)) / 2``. Computing ``d`` here lets the backward add its gradient to the
    block gradients in place (no extra ``[n, D]`` tensors). With ``normalize``, ``d`` is the cosine.

    Row shards (under ``torch.distributed``, each rank its :func:`scibind.align.distributed.rank_rows`):
    ``rows = (lo, hi)`` computes only the blocks of those rows, so ``r`` is valid on ``[lo, hi)`` only (0
    elsewhere). With ``reduce_cols`` every rank's partial column sums are all-reduced, so ``c`` is every
    column's full log-sum-exp on every rank, and backward all-reduces the column gradients before using
    them. Each rank then does ``1/W`` of the block work; the caller sums its rows' and its columns' terms.
    """
    rows = (0, za.shape[0]) if rows is None else rows
    return _RowColLogSumExp.apply(za, zb, scale.to(za.dtype), int(block), bool(normalize), rows, reduce_cols)


class _SigmoidPairSum(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any,
        za: torch.Tensor,
        zb: torch.Tensor,
        scale: torch.Tensor,
        bias: torch.Tensor,
        groups: torch.Tensor | None,
        block: int,
        grad_enabled: bool,
        normalize: bool,
        rows: tuple[int, int],
    ) -> torch.Tensor:
        # needs_input_grad is set under no_grad too: ask the caller's grad mode, so evaluation skips the
        # two gradient products per block.
        need = grad_enabled and any(ctx.needs_input_grad[:4])
        with no_autocast(za.device):
            m = zb.shape[0]
            (inv_a, keep_a), (inv_b, keep_b) = (
                (_inverse_norms(za), _inverse_norms(zb)) if normalize else ((None, None), (None, None))
            )
            total = za.new_zeros(())
            if need:
                acc_a = torch.zeros_like(za)
                acc_b = torch.zeros_like(zb)
                acc_bias = za.new_zeros(())
            lo, hi = rows
            for i0, i1 in _blocks(hi, block, start=lo):
                a = _row_block(za, inv_a, i0, i1)
                a_scaled = a * scale
                for j0, j1 in _blocks(m, block):
                    b = _row_block(zb, inv_b, j0, j1)
                    # z = -y·x: the logit x for negatives, -x for positives; loss = softplus(z).
                    z = torch.addmm(bias, a_scaled, b.T)
                    pos = None if groups is None else _group_positives(groups, i0, i1, j0, j1)
                    diagonal = i0 < j1 and j0 < i1  # the block holds part of the diagonal i == j
                    if pos is not None:
                        z = torch.where(pos, -z, z)
                    elif diagonal:
                        z.diagonal(i0 - j0).neg_()
                    total += _softplus_sum(z)
                    if need:
                        g = z.sigmoid_()  # dloss/dz; dloss/dx = -y·sigmoid(z)
                        if pos is not None:
                            g = torch.where(pos, -g, g)
                        elif diagonal:
                            g.diagonal(i0 - j0).neg_()
                        acc_a[i0:i1].addmm_(g, b)
                        acc_b[j0:j1].addmm_(g.T, a)
                        acc_bias += g.sum()
            if need:
                grad_scale = _dot_normalized(za, inv_a, acc_a).reshape(scale.shape)
                acc_a.mul_(scale)
                acc_b.mul_(scale)
                if normalize:
                    _normalize_backward_(acc_a, za, inv_a, keep_a)
                    _normalize_backward_(acc_b, zb, inv_b, keep_b)
                # Kept on ctx (not save_for_backward) so backward scales them in place and drops them:
                # the gradients then cost no second O(n·D) copy.
                ctx.grads = [acc_a, acc_b, grad_scale, acc_bias.reshape(bias.shape)]
        return total

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:
        grads = getattr(ctx, "grads", None)
        if grads is None:
            raise RuntimeError(
                "sigmoid_pair_sum computes its gradients during forward and hands them out once; "
                "backward through it a second time (retain_graph=True) is not supported"
            )
        ctx.grads = None
        return (*(g.mul_(grad) for g in grads), None, None, None, None, None)


def _softplus_sum(z: torch.Tensor) -> torch.Tensor:
    """``sum(log(1 + exp(z)))`` in one fused pass.

    ``softplus`` returns ``z`` itself above ``z = 20``, dropping ``log1p(exp(-z)) < 2.1e-9``: below float32's
    resolution there, and a relative error under ``1e-10`` in float64.
    """
    return F.softplus(z).sum()


def _group_positives(groups: torch.Tensor, i0: int, i1: int, j0: int, j1: int) -> torch.Tensor:
    """``bool`` positives of one block: the diagonal and every pair sharing a non-negative group code."""
    gi, gj = groups[i0:i1], groups[j0:j1]
    pos = (gi[:, None] == gj[None, :]) & (gi >= 0)[:, None]
    if i0 < j1 and j0 < i1:
        pos.diagonal(i0 - j0).fill_(True)
    return pos


def sigmoid_pair_sum(
    za: torch.Tensor,
    zb: torch.Tensor,
    scale: torch.Tensor,
    bias: torch.Tensor,
    groups: torch.Tensor | None,
    block: int,
    *,
    normalize: bool = False,
    rows: tuple[int, int] | None = None,
) -> torch.Tensor:
    """``sum_ij -log sigmoid(y_ij · (scale · za_i·zb_j + bias))``, never materialising the ``n x n`` logits.

    Args:
        za: ``[n, D]`` row embeddings.
        zb: ``[n, D]`` column embeddings.
        scale: 0-d logit scale ``s``.
        bias: 0-d logit bias ``b``.
        groups: ``int64[n]`` codes: ``y_ij = +1`` on the diagonal and where ``groups[i] == groups[j] >= 0``,
            ``-1`` elsewhere; ``None`` for the diagonal only.
        block: Side of the square blocks.
        normalize: L2-normalise the rows of ``za`` and ``zb`` first, block by block (no normalised copies).
        rows: ``(lo, hi)``: only the terms of rows ``i`` in ``[lo, hi)`` (against every column), a shard of
            the sum (:func:`scibind.align.distributed.rank_rows`); ``None``: every row.

    Returns:
        The 0-d sum (not divided by ``n``), differentiable with respect to ``za``, ``zb``, ``scale`` and
        ``bias``; its gradients are accumulated during forward (one pass over the blocks in all).
    """
    dtype = za.dtype
    return _SigmoidPairSum.apply(
        za,
        zb,
        scale.to(dtype),
        bias.to(dtype),
        groups,
        int(block),
        torch.is_grad_enabled(),
        bool(normalize),
        (0, za.shape[0]) if rows is None else rows,
    )
