"""Gathering tensors across ranks so a contrastive loss sees the global batch.

Why gradients come out exact
----------------------------
Under ``torchrun`` every rank embeds its own slice ``z_r`` of the global batch, gathers every slice with
:func:`gather_with_grad` and computes the *same* loss ``L`` over the whole global batch
``Z = [z_0, ..., z_{W-1}]``.

* Forward: ``L`` is identical on every rank and equals the single-process loss on ``Z``.
* Backward on rank ``k`` produces ``dL/dZ`` for *all* rows. The backward of the gather (as that of
  ``torch.distributed.nn.functional.all_gather``, which torch 2.13 deprecates) sends each rank's rows back
  to their owner and **sums** them, so rank ``r`` receives
  ``sum_k dL/dz_r = W * dL/dz_r``.
* Rank ``r``'s encoder parameters therefore get ``W * dL/dz_r * dz_r/dθ``. DistributedDataParallel
  **averages** parameter gradients over the ``W`` ranks:
  ``(1/W) * sum_r W * dL/dz_r * dz_r/dθ = dL/dθ`` — exactly the single-process gradient.
* Parameters of the loss itself (temperature, bias) see ``dL/dθ`` on every rank; averaging keeps it.

Sharded losses
--------------
A loss that is a sum over rows of the global batch (SigLIP's pairs, Symile's anchor rows, InfoNCE's rows
and columns) need not be computed whole on every rank: rank ``r`` computes the shard ``L_r`` over its rows
:func:`rank_rows` (against every column), with ``sum_r L_r = L``. :func:`sum_of_shards` returns ``W · L_r``
with its *value* replaced by ``L``. The gather's backward then gives rank ``r`` the sum
``sum_k W · dL_k/dz_r = W · dL/dz_r`` (as above) and averaging gives ``dL/dθ``: the same gradients at
``1/W`` of the loss's cost.

Slices may differ in length between ranks (the last batch of an epoch): sizes are exchanged first and
each slice is padded to the longest before the collective, then the padding is cut off again.

Without an initialised process group every function is the identity, so single-process code needs no
special case.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F

__all__ = [
    "gather_no_grad",
    "gather_sizes",
    "gather_with_grad",
    "is_distributed",
    "rank_rows",
    "sum_of_shards",
]


def is_distributed() -> bool:
    """Whether ``torch.distributed`` is available and a process group is initialised."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def gather_sizes(n: int, device: torch.device | str = "cpu") -> list[int]:
    """Every rank's length along dim 0 (``[n]`` when not distributed).

    Args:
        n: This rank's number of rows.
        device: Device of the exchanged size tensor (must suit the backend: CUDA for NCCL).
    """
    if not is_distributed():
        return [n]
    local = torch.tensor([n], dtype=torch.int64, device=device)
    out = [torch.zeros_like(local) for _ in range(dist.get_world_size())]
    dist.all_gather(out, local)
    return [int(t.item()) for t in out]


def _pad_rows(t: torch.Tensor, rows: int) -> torch.Tensor:
    if t.shape[0] == rows:
        return t
    pad = [0, 0] * (t.dim() - 1) + [0, rows - t.shape[0]]
    if t.dtype == torch.bool:
        return F.pad(t.to(torch.uint8), pad).to(torch.bool)
    return F.pad(t, pad)


def _unpad(parts: list[torch.Tensor] | tuple[torch.Tensor, ...], sizes: list[int]) -> torch.Tensor:
    return torch.cat([p[:s] for p, s in zip(parts, sizes, strict=True)], dim=0)


class _AllGather(torch.autograd.Function):
    """All-gather of equal-length slices; backward sums every rank's gradient of this rank's slice."""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, t: torch.Tensor) -> torch.Tensor:
        t = t.contiguous()
        parts = [torch.empty_like(t) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, t)
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor) -> torch.Tensor:
        # A reduce-scatter written as all-reduce + slice: gloo has no reduce-scatter, and one code path
        # (the one the 2-process CPU test checks) serves every backend.
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        return grad.chunk(dist.get_world_size(), dim=0)[dist.get_rank()]


def gather_with_grad(t: torch.Tensor, sizes: list[int] | None = None) -> torch.Tensor:
    """Concatenate ``t`` from every rank along dim 0, keeping gradients to every rank's slice.

    Args:
        t: This rank's rows, ``[n, ...]``.
        sizes: Every rank's ``n`` when already known (from :func:`gather_sizes`); exchanged otherwise.

    Returns:
        ``[sum(sizes), ...]`` in rank order; ``t`` itself when not distributed. See the module docstring
        for why the gradient this yields, averaged over ranks by DDP, is the single-process gradient.
    """
    if not is_distributed():
        return t
    sizes = gather_sizes(t.shape[0], t.device) if sizes is None else sizes
    rows = max(sizes)
    gathered = _AllGather.apply(_pad_rows(t, rows))
    return _unpad(gathered.split(rows, dim=0), sizes)


@torch.no_grad()
def gather_no_grad(t: torch.Tensor, sizes: list[int] | None = None) -> torch.Tensor:
    """Concatenate ``t`` from every rank along dim 0 without autograd (masks, targets).

    Args:
        t: This rank's rows, ``[n, ...]`` (any dtype, ``bool`` included).
        sizes: Every rank's ``n`` when already known; exchanged otherwise.

    Returns:
        ``[sum(sizes), ...]`` in rank order; ``t`` itself when not distributed.
    """
    if not is_distributed():
        return t
    sizes = gather_sizes(t.shape[0], t.device) if sizes is None else sizes
    padded = _pad_rows(t, max(sizes)).contiguous()
    wire = padded.to(torch.uint8) if padded.dtype == torch.bool else padded
    parts = [torch.empty_like(wire) for _ in sizes]
    dist.all_gather(parts, wire)
    out = _unpad(parts, sizes)
    return out.to(torch.bool) if t.dtype == torch.bool else out


def rank_rows(n: int) -> tuple[int, int]:
    """This rank's share ``(lo, hi)`` of ``n`` rows: consecutive, sizes differing by at most one.

    ``(0, n)`` when not distributed.
    """
    if not is_distributed():
        return 0, n
    rank, world = dist.get_rank(), dist.get_world_size()
    return n * rank // world, n * (rank + 1) // world


def sum_of_shards(local: torch.Tensor) -> torch.Tensor:
    """Turn this rank's shard ``L_r`` of a row-sharded loss into the global loss (see the module docstring).

    Args:
        local: 0-d shard computed over :func:`rank_rows` (differentiable).

    Returns:
        A 0-d tensor whose value is ``sum_r L_r`` (one all-reduce) and whose gradient is ``W · dL_r``;
        ``local`` itself when not distributed.
    """
    if not is_distributed():
        return local
    world = dist.get_world_size()
    total = local.detach().clone()
    dist.all_reduce(total)
    return world * local + (total - world * local).detach()
