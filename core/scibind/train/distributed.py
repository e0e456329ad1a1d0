"""Multi-process training under ``torchrun``: process group set-up, rank-0 helpers, gradient averaging.

``torchrun --nproc-per-node N -m scibind train ...`` sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``; this
module joins the process group (gloo on CPU, NCCL on CUDA). Without those variables everything runs as a
single process and every helper is a no-op.

Gradients are averaged with an explicit all-reduce after backward rather than by wrapping the model in
``DistributedDataParallel``. Reasons:

- A tower whose view is absent from a rank's micro-batch produces no gradient there. DDP would need
  ``find_unused_parameters=True`` (an extra graph walk each step) and still hangs when ranks disagree on
  which parameters were used; here a missing gradient counts as zero, so every rank reduces the same
  tensors in the same order.
- The objective's learnable temperature (and SigLIP bias) lives outside the model; it is averaged the
  same way with no wrapper module.
- Accumulation needs no ``no_sync`` context: gradients are reduced once per optimizer step.

Averaging is the right reduction because the objectives gather embeddings across ranks with gradients
(``scibind.align.distributed.gather_with_grad``): every rank computes the loss of the global batch, and
the gather's backward sums the gradients all ranks send to each rank's own embeddings, so each rank's
local parameter gradient is ``world_size`` times its share and the average over ranks is exactly the
single-process gradient of the global batch. The temperature's gradient is identical on every rank, so
its average is itself.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

import torch
import torch.distributed as dist

from scibind.errors import ConfigError

__all__ = [
    "DistContext",
    "all_reduce_gradients",
    "barrier",
    "broadcast_parameters",
    "cleanup",
    "gather_bytes",
    "init_distributed",
]

BUCKET_NUMEL = 32 * 1024 * 1024
CPU = torch.device("cpu")


@dataclass(frozen=True)
class DistContext:
    """Where this process stands.

    Attributes:
        rank: Global rank (0 when not distributed).
        world_size: Number of processes.
        local_rank: Rank on this machine (selects the GPU).
        device: The device this process trains on.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = CPU

    @property
    def is_main(self) -> bool:
        """Whether this process writes files and logs (rank 0)."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """Whether several processes train together."""
        return self.world_size > 1


def init_distributed(device: str = "auto") -> DistContext:
    """Join the ``torchrun`` process group when its environment is set; choose this process's device.

    Args:
        device: ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda"``.

    Returns:
        The context; the process group is initialised when ``WORLD_SIZE`` > 1.

    Raises:
        ConfigError: ``device="cuda"`` without a usable GPU, or more local ranks than GPUs.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if use_cuda and not torch.cuda.is_available():
        raise ConfigError("train.device is 'cuda' but no CUDA device is usable; use --set train.device=cpu")
    if use_cuda:
        if local_rank >= torch.cuda.device_count():
            raise ConfigError(
                f"LOCAL_RANK {local_rank} but only {torch.cuda.device_count()} CUDA devices; lower "
                "--nproc-per-node or use --set train.device=cpu"
            )
        torch.cuda.set_device(local_rank)
        dev = torch.device("cuda", local_rank)
    else:
        dev = torch.device("cpu")
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo", init_method="env://")
    return DistContext(rank=rank, world_size=world_size, local_rank=local_rank, device=dev)


def barrier(ctx: DistContext) -> None:
    """Wait until every rank reaches this point (no-op in a single process)."""
    if ctx.distributed and dist.is_initialized():
        if ctx.device.type == "cuda":
            dist.barrier(device_ids=[ctx.device.index])
        else:
            dist.barrier()


def cleanup(ctx: DistContext) -> None:
    """Leave the process group (no-op in a single process)."""
    if ctx.distributed and dist.is_initialized():
        dist.destroy_process_group()


def broadcast_parameters(params: Iterable[torch.Tensor], ctx: DistContext) -> None:
    """Copy rank 0's values of ``params`` (and buffers) to every rank, as DDP does at start."""
    if not ctx.distributed:
        return
    with torch.no_grad():
        for tensor in params:
            dist.broadcast(tensor.data, src=0)


def all_reduce_gradients(params: Iterable[torch.nn.Parameter], ctx: DistContext) -> None:
    """Average the gradients of ``params`` over ranks, in place.

    Parameters that got no gradient on this rank (an absent view's tower) contribute zeros, so every rank
    reduces the same tensors. Gradients are coalesced into flat buckets of at most ``BUCKET_NUMEL``
    elements per dtype to keep the number of collective calls small.
    """
    if not ctx.distributed:
        return
    grads: list[torch.Tensor] = []
    for p in params:
        if not p.requires_grad:
            continue
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        grads.append(p.grad)
    for bucket in _buckets(grads):
        flat = torch.cat([g.reshape(-1) for g in bucket])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        flat.div_(ctx.world_size)
        offset = 0
        for g in bucket:
            n = g.numel()
            g.copy_(flat[offset : offset + n].view_as(g))
            offset += n


def _buckets(grads: list[torch.Tensor]) -> list[list[torch.Tensor]]:
    by_dtype: dict[torch.dtype, list[list[torch.Tensor]]] = {}
    for g in grads:
        groups = by_dtype.setdefault(g.dtype, [[]])
        if groups[-1] and sum(t.numel() for t in groups[-1]) + g.numel() > BUCKET_NUMEL:
            groups.append([])
        groups[-1].append(g)
    return [bucket for groups in by_dtype.values() for bucket in groups if bucket]


def gather_bytes(data: bytes, ctx: DistContext) -> list[bytes]:
    """Collect one byte string from every rank, in rank order (``[data]`` in a single process).

    Used for small per-rank state (RNG states as JSON and raw bytes); it moves tensors only, so nothing is
    pickled.
    """
    if not ctx.distributed:
        return [data]
    device = ctx.device
    payload = torch.tensor(list(data), dtype=torch.uint8)
    size = torch.tensor([payload.numel()], dtype=torch.int64, device=device)
    sizes = [torch.zeros_like(size) for _ in range(ctx.world_size)]
    dist.all_gather(sizes, size)
    longest = int(max(int(s.item()) for s in sizes))
    padded = torch.zeros(longest, dtype=torch.uint8, device=device)
    padded[: payload.numel()] = payload.to(device)
    chunks = [torch.zeros_like(padded) for _ in range(ctx.world_size)]
    dist.all_gather(chunks, padded)
    return [bytes(c[: int(s.item())].cpu().numpy().tobytes()) for c, s in zip(chunks, sizes, strict=True)]
