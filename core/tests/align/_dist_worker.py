"""Cases and the per-rank worker of the distributed objective test (imported by spawned processes)."""

from __future__ import annotations

import contextlib
import os
from unittest import mock

import torch
import torch.distributed as dist
from safetensors.torch import save_file
from scibind.align import tiled
from scibind.align.clip import ClipObjective
from scibind.align.cwcl import CWCLObjective
from scibind.align.filip import FilipObjective
from scibind.align.gram import GramObjective
from scibind.align.prototype import PrototypeObjective
from scibind.align.siglip import SigLipObjective
from scibind.align.soft_clip import SoftClipObjective
from scibind.align.symile import SymileObjective
from scibind.align.uniformity import UniformityAlignmentObjective

VIEWS = ("text", "vector")
SLICES = (slice(0, 3), slice(3, 8))  # uneven on purpose: rank 0 has 3 rows, rank 1 has 5
# block_size=3 / tile_elements=5: the tiled paths, with blocks that divide neither a rank's slice nor the
# global batch. SigLIP and Symile compute a row shard per rank (dense SigLIP too).
OBJECTIVES = {
    "clip": lambda: ClipObjective(positive_target="group", block_size=3),
    # The running-max path (what float32 takes at large scales), forced in float64; label smoothing too.
    "clip-running-max": lambda: ClipObjective(positive_target="group", block_size=3, label_smoothing=0.1),
    "siglip": lambda: SigLipObjective(positive_target="group", block_size=3),
    "siglip-dense": lambda: SigLipObjective(positive_target="group", tiled=False),
    "symile": lambda: SymileObjective(tile_elements=5),
    # The objectives that compute their whole loss on every rank.
    "gram": lambda: GramObjective(),
    "soft-clip": lambda: SoftClipObjective(labels=["group"]),
    "cwcl": lambda: CWCLObjective(weights_view="vector"),
    "prototype": lambda: PrototypeObjective(embed_dim=4, n_prototypes=3),
    "filip": lambda: FilipObjective(),
    "uniformity-alignment": lambda: UniformityAlignmentObjective(anchor="text"),
}


def make_case(kind: str) -> tuple[torch.nn.Module, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(objective, replicated linear "encoder" weights and the global inputs), identical in every process."""
    gen = torch.Generator().manual_seed(1234)
    objective = OBJECTIVES[kind]().double()
    weights = {v: torch.randn(6, 4, generator=gen, dtype=torch.float64).requires_grad_() for v in VIEWS}
    data = {v: torch.randn(8, 6, generator=gen, dtype=torch.float64) for v in VIEWS}
    data["present.text"] = torch.tensor([1, 1, 0, 1, 1, 1, 0, 1], dtype=torch.bool)
    data["present.vector"] = torch.tensor([1, 0, 1, 1, 1, 1, 1, 1], dtype=torch.bool)
    data["group"] = torch.tensor([0, 1, 0, -1, 2, 2, -1, 1])
    return objective, weights, data


def step(kind: str, rows: slice) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.nn.Module, dict]:
    """Embed ``rows`` of the global batch, compute the loss and backpropagate."""
    objective, weights, data = make_case(kind)
    z = {v: data[v][rows] @ weights[v] for v in VIEWS}
    for t in z.values():
        t.retain_grad()
    present = {v: data[f"present.{v}"][rows] for v in VIEWS}
    torch.manual_seed(7)  # Symile's permutations: drawn on rank 0 (and broadcast), as in one process
    running_max = kind == "clip-running-max"
    with mock.patch.object(tiled, "_FIXED_SHIFT_LIMIT", {}) if running_max else contextlib.nullcontext():
        loss = objective(z, present, group=data["group"][rows]).loss
        loss.backward()
    return loss.detach(), z, objective, weights


def worker(rank: int, world_size: int, port: int, out_dir: str) -> None:
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    try:
        result = {}
        for kind in OBJECTIVES:
            loss, z, objective, weights = step(kind, SLICES[rank])
            # What DistributedDataParallel does with every parameter's gradient: average over ranks.
            for name, p in [*weights.items(), *objective.named_parameters()]:
                dist.all_reduce(p.grad)
                result[f"{kind}/grad.{name}"] = p.grad / world_size
            result[f"{kind}/loss"] = loss
            for v in VIEWS:
                result[f"{kind}/zgrad.{v}"] = z[v].grad / world_size
        path = os.path.join(out_dir, f"rank{rank}.safetensors")
        save_file({k: v.contiguous() for k, v in result.items()}, path)
        dist.barrier()
    finally:
        dist.destroy_process_group()
