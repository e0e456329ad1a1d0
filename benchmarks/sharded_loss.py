"""Row-sharded losses under torch.distributed: the loss's time per rank with W ranks against one process.

``core/clip`` (tiled), ``core/siglip`` and ``core/symile`` split their loss by rows across ranks: each rank
computes the blocks of its ``1/W`` share of the rows against every column (:mod:`scibind.align.distributed`).
This spawns ``W`` gloo processes of one thread each; every rank holds ``B / W`` rows of each view and times
forward + backward of the objective over the global batch of ``B`` (gathers included). Then one process of
one thread times the same objective over all ``B`` rows. The ratio is the loss's time per rank relative to
one process: ``1/W`` would be perfect sharding, ``1`` none. Run it on an otherwise idle machine with at
least ``W`` cores: the ranks must not share one.

Run: .venv/bin/python benchmarks/sharded_loss.py [--batch 4096] [--dim 512] [--ranks 2]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

KINDS = ("clip", "siglip", "symile")


def _objective(kind: str) -> Any:
    from scibind.align.clip import ClipObjective
    from scibind.align.siglip import SigLipObjective
    from scibind.align.symile import SymileObjective

    return {"clip": ClipObjective, "siglip": SigLipObjective, "symile": SymileObjective}[kind]()


def _views(kind: str, batch: int, dim: int, rows: slice) -> dict[str, Any]:
    import torch

    gen = torch.Generator().manual_seed(0)
    count = 3 if kind == "symile" else 2
    return {f"v{i}": torch.randn(batch, dim, generator=gen)[rows].requires_grad_() for i in range(count)}


def _time(kind: str, batch: int, dim: int, rows: slice, repeats: int) -> float:
    import torch

    objective = _objective(kind)
    best = float("inf")
    for _ in range(repeats):
        views = _views(kind, batch, dim, rows)
        torch.manual_seed(0)
        start = time.perf_counter()
        objective(views).loss.backward()
        best = min(best, time.perf_counter() - start)
    return best


def _rank(rank: int, world: int, port: int, batch: int, dim: int, repeats: int, out: str) -> None:
    import torch
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        rows = slice(batch * rank // world, batch * (rank + 1) // world)
        result = {}
        for kind in KINDS:
            dist.barrier()
            result[kind] = _time(kind, batch, dim, rows, repeats)
        with open(os.path.join(out, f"rank{rank}.json"), "w") as f:
            json.dump(result, f)
    finally:
        dist.destroy_process_group()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=4096)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2, help="best of this many steps")
    args = parser.parse_args()

    import torch
    import torch.multiprocessing as mp

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with tempfile.TemporaryDirectory() as out:
        mp.spawn(
            _rank,
            args=(args.ranks, port, args.batch, args.dim, args.repeats, out),
            nprocs=args.ranks,
            join=True,
        )
        ranks = [json.loads((Path(out) / f"rank{r}.json").read_text()) for r in range(args.ranks)]
    torch.set_num_threads(1)
    print(f"B = {args.batch}, D = {args.dim}, {args.ranks} ranks x 1 thread against 1 process x 1 thread")
    print(f"{'objective':>10} {'1 process s':>12} {'per rank s':>11} {'ratio':>6}")
    for kind in KINDS:
        alone = _time(kind, args.batch, args.dim, slice(None), args.repeats)
        per_rank = max(r[kind] for r in ranks)
        print(f"{kind:>10} {alone:>12.2f} {per_rank:>11.2f} {per_rank / alone:>6.2f}")


if __name__ == "__main__":
    main()
