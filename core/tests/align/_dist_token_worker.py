"""Per-rank worker of the distributed FILIP token test (imported by spawned processes)."""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
import torch.nn.functional as F
from safetensors.torch import save_file
from scibind.align.filip import FilipObjective

SLICES = (slice(0, 3), slice(3, 8))  # uneven: rank 0 has 3 rows, rank 1 has 5
LENGTHS = torch.tensor([1, 2, 1, 4, 2, 3, 1, 2])  # rank 0's tokens are padded to 2, rank 1's to 4


def make_case() -> tuple[FilipObjective, dict[str, torch.Tensor]]:
    """The objective and the global inputs (masked token slots hold garbage), identical in every process."""
    gen = torch.Generator().manual_seed(99)
    data = {
        "tokens": F.normalize(torch.randn(8, 4, 5, generator=gen, dtype=torch.float64), dim=-1),
        "mask": torch.arange(4)[None, :] < LENGTHS[:, None],
        "vector": torch.randn(8, 5, generator=gen, dtype=torch.float64),
        "present.text": torch.tensor([1, 1, 1, 0, 1, 1, 1, 1], dtype=torch.bool),
    }
    return FilipObjective(rows_per_tile=2).double(), data


def step(rows: slice) -> tuple[torch.Tensor, torch.Tensor, FilipObjective]:
    """FILIP over ``rows``, tokens cut to the slice's longest text: loss, token leaf and objective."""
    objective, data = make_case()
    width = int(LENGTHS[rows].max())
    tokens = data["tokens"][rows, :width].clone().requires_grad_()
    out = objective(
        {"vector": data["vector"][rows]},
        {"text": data["present.text"][rows]},
        tokens={"text": tokens},
        token_masks={"text": data["mask"][rows, :width]},
    )
    out.loss.backward()
    return out.loss.detach(), tokens, objective


def worker(rank: int, world_size: int, port: int, out_dir: str) -> None:
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    try:
        loss, tokens, objective = step(SLICES[rank])
        grad = objective.logit_scale.grad.clone()
        dist.all_reduce(grad)
        result = {
            "loss": loss,
            "tokens.grad": tokens.grad / world_size,
            "logit_scale.grad": grad / world_size,
        }
        save_file(
            {k: v.contiguous() for k, v in result.items()}, os.path.join(out_dir, f"rank{rank}.safetensors")
        )
        dist.barrier()
    finally:
        dist.destroy_process_group()
