"""Higher-order information: Symile vs pairwise CLIP on XOR data, and Symile's cost vs the `symile` package.

1. The Symile paper's synthetic experiment: ``a, b`` are uniform random bit vectors and ``c = a XOR b``.
   Every pair of views is independent (pairwise mutual information 0), so pairwise CLIP cannot learn anything
   that predicts ``a`` from ``(b, c)``; the three-way information is complete. Three MLP towers are trained
   with ``core/symile`` and with ``core/clip`` over all pairs; the test task picks the true ``a`` among all
   ``2^bits`` candidates from ``(b, c)`` (Symile: MIP; CLIP: sum of the two cosine similarities).
   Chance is ``1 / 2^bits``.
2. Time and peak memory of one forward+backward of the O(N) Symile loss over 3 x [B, 512] float32
   embeddings, scibind (tiled, gradients in the forward tiles) against ``symile.Symile("n")``, each run in a
   fresh process (peak RSS above the inputs). ``GEMMs s`` times the nine ``B x B x D`` matrix products alone
   (per anchor: the logits and the two gradient products) that any exact implementation performs, and
   ``floor x`` their share of the package's time: no exact implementation can go below that ratio.

Run: OMP_NUM_THREADS=2 .venv/bin/python benchmarks/higher_order.py [--sizes 1024 4096 16384] [--skip-xor]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time


def xor_experiment(bits: int = 4, steps: int = 400, batch: int = 256, seed: int = 0) -> dict[str, float]:
    import torch
    from scibind.align.symile import SymileObjective, mip_similarity
    from scibind.align.uniformity import UniformityAlignmentObjective
    from torch import nn

    def sample(n: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
        a = torch.randint(0, 2, (n, bits), generator=gen)
        b = torch.randint(0, 2, (n, bits), generator=gen)
        return {"a": a.float(), "b": b.float(), "c": (a ^ b).float()}

    def towers() -> nn.ModuleDict:
        return nn.ModuleDict(
            {v: nn.Sequential(nn.Linear(bits, 64), nn.GELU(), nn.Linear(64, 32)) for v in ("a", "b", "c")}
        )

    results = {}
    for name in ("symile", "clip"):
        torch.manual_seed(seed)
        model = towers()
        if name == "symile":
            objective = SymileObjective(negative_sampling="n")
        else:  # core/clip's symmetric InfoNCE over all three pairs (regularisers off)
            objective = UniformityAlignmentObjective(alignment_weight=0.0, uniformity_weight=0.0)
        params = [*model.parameters(), *objective.parameters()]
        opt = torch.optim.Adam(params, lr=3e-3)
        gen = torch.Generator().manual_seed(seed)
        for _ in range(steps):
            data = sample(batch, gen)
            loss = objective({v: model[v](x) for v, x in data.items()}).loss
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            test = sample(2000, torch.Generator().manual_seed(seed + 1))
            grid = torch.tensor([[(k >> i) & 1 for i in range(bits)] for k in range(2**bits)]).float()
            norm = torch.nn.functional.normalize
            cand = norm(model["a"](grid), dim=-1)
            zb, zc = norm(model["b"](test["b"]), dim=-1), norm(model["c"](test["c"]), dim=-1)
            pairwise = zb @ cand.T + zc @ cand.T
            scores = mip_similarity(cand, [zb, zc]) if name == "symile" else pairwise
            truth = (test["a"] * (2 ** torch.arange(bits)).float()).sum(1).long()
            results[name] = float((scores.argmax(1) == truth).float().mean())
    results["chance"] = 1 / 2**bits
    return results


def _rss_kb() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() // 1024


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


def cost_child(impl: str, n: int, dim: int) -> None:
    import torch
    import torch.nn.functional as F

    torch.manual_seed(0)
    reps = [F.normalize(torch.randn(n, dim), dim=-1).requires_grad_() for _ in range(3)]
    scale = torch.tensor(10.0, requires_grad=True)
    if impl == "scibind":
        from scibind.align.symile import symile_loss

        def step() -> None:
            perms = [[torch.randperm(n) for _ in range(2)] for _ in range(3)]
            symile_loss(reps, scale, "n", perms)[0].backward()
    elif impl == "gemm":
        # The floor of any exact implementation: per anchor, the logits x @ P.T and the two gradient
        # products G @ P and G.T @ x, as three plain B x B x D matrix products (nothing else).
        def step() -> None:
            with torch.no_grad():
                for i in range(3):
                    x, p = reps[i], reps[(i + 1) % 3] * reps[(i + 2) % 3]
                    g = x @ p.T
                    g @ p
                    g.T @ x
    else:
        from symile import Symile

        loss_fn = Symile("n")

        def step() -> None:
            loss_fn(reps, scale).backward()

    with open("/proc/self/clear_refs", "w") as f:  # resets the peak RSS (VmHWM) to the current RSS
        f.write("5")
    base = _rss_kb()
    start = time.perf_counter()
    step()
    seconds = time.perf_counter() - start
    peak = _status_kb("VmHWM")
    print(json.dumps({"impl": impl, "B": n, "seconds": seconds, "peak_mb": (peak - base) / 1024}))


def cost(n: int, dim: int, impl: str, timeout: float) -> dict[str, float] | None:
    cmd = [sys.executable, __file__, "--child", impl, str(n), str(dim)]
    try:
        out = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[1024, 4096, 16384])
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per measured run")
    parser.add_argument("--skip-xor", action="store_true")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        cost_child(args.child[0], int(args.child[1]), int(args.child[2]))
        return
    if not args.skip_xor:
        started = time.perf_counter()
        acc = xor_experiment()
        print(
            f"XOR (4 bits, predict a from b and c; chance {acc['chance']:.3f}): "
            f"Symile {acc['symile']:.3f}, pairwise CLIP {acc['clip']:.3f} "
            f"({time.perf_counter() - started:.0f} s)",
            flush=True,
        )
    print(f"# load average {os.getloadavg()[0]:.1f} at start")
    header = ("B", "scibind s", "symile s", "time x", "GEMMs s", "floor x")
    header += ("scibind MB", "symile MB", "mem x")
    print("{:>6} {:>10} {:>9} {:>7} {:>8} {:>8} {:>11} {:>10} {:>7}".format(*header))
    for n in args.sizes:
        ours = cost(n, args.dim, "scibind", args.timeout)
        theirs = cost(n, args.dim, "symile", args.timeout)
        floor = cost(n, args.dim, "gemm", args.timeout)
        if ours is None or theirs is None or floor is None:
            print(f"{n:>6} timed out after {args.timeout:.0f} s (scibind: {ours}, symile: {theirs})")
            continue
        print(
            f"{n:>6} {ours['seconds']:>10.2f} {theirs['seconds']:>9.2f} "
            f"{ours['seconds'] / theirs['seconds']:>7.2f} "
            f"{floor['seconds']:>8.2f} {floor['seconds'] / theirs['seconds']:>8.2f} "
            f"{ours['peak_mb']:>11.0f} {theirs['peak_mb']:>10.0f} "
            f"{ours['peak_mb'] / max(theirs['peak_mb'], 1e-9):>7.3f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
