"""Tiled InfoNCE / SigLIP (scibind) against open_clip's ClipLoss / SigLipLoss: time, peak memory, GFLOP/s.

    python benchmarks/contrastive_loss.py                       # B in {4096, 16384, 65536}, D = 512, fp32
    python benchmarks/contrastive_loss.py --sizes 1024 --repeats 3

Every (library, loss, B) runs in a fresh process, so peak memory is that run's alone; both libraries are
measured in the same invocation and the table reports ratios (timings on a shared machine move between
runs; ratios measured side by side move much less). Per cell:

- median seconds of one forward + backward (inputs: L2-normalised ``[B, D]`` fp32 features that require
  grad, a learnable logit scale (and bias): open_clip's initial values, 1/0.07 for CLIP, 10 and -10 for
  SigLIP);
- peak RSS increase over the process's resident memory just before the first call (Linux VmHWM, reset
  through ``/proc/self/clear_refs``), gradients of the features included;
- achieved GFLOP/s counting ``6·B²·D`` (logits plus the two gradient products: the least any exact
  implementation does), and its fraction of the process's measured fp32 matmul peak.

open_clip's loss module is loaded from its file (``open_clip/loss.py``): the package's ``__init__``
imports torchvision, while the loss needs only torch. Install it with
``pip install --no-deps -r benchmarks/requirements.txt``. open_clip is skipped where its ``B x B``
matrices cannot fit (estimate above ``--open-clip-max-gb``).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

# Measured at B = 16384 (several B x B float32 matrices live at once); scaled by B².
OPEN_CLIP_GB_AT_16K = {"clip": 4.3, "siglip": 5.3}


def _status(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1]) / 1024
    raise KeyError(field)


def _load_open_clip_loss():
    path = importlib.metadata.distribution("open-clip-torch").locate_file("open_clip/loss.py")
    spec = importlib.util.spec_from_file_location("open_clip_loss", str(path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _matmul_peak(torch) -> float:
    a = torch.randn(2048, 512)
    b = torch.randn(512, 2048)
    a @ b
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * 2048 * 2048 * 512 / best / 1e9


def child(lib: str, loss: str, size: int, dim: int, repeats: int, warmup: int, threads: int) -> dict:
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    peak = _matmul_peak(torch)
    image = F.normalize(torch.randn(size, dim), dim=-1).requires_grad_()
    text = F.normalize(torch.randn(size, dim), dim=-1).requires_grad_()
    if lib == "scibind":
        from scibind.align.clip import ClipObjective
        from scibind.align.siglip import SigLipObjective

        objective = (ClipObjective if loss == "clip" else SigLipObjective)(pairs=[("image", "text")])
        params = list(objective.parameters())

        def step():
            objective({"image": image, "text": text}).loss.backward()

    else:
        module = _load_open_clip_loss()
        if loss == "clip":
            logit_scale = torch.tensor(1 / 0.07).log().requires_grad_()
            fn = module.ClipLoss()
            params = [logit_scale]

            def step():
                fn(image, text, logit_scale.exp()).backward()

        else:
            logit_scale = torch.tensor(10.0).log().requires_grad_()
            logit_bias = torch.tensor(-10.0).requires_grad_()
            fn = module.SigLipLoss()
            params = [logit_scale, logit_bias]

            def step():
                fn(image, text, logit_scale.exp(), logit_bias).backward()

    def run() -> float:
        for t in (image, text, *params):
            t.grad = None
        t0 = time.perf_counter()
        step()
        return time.perf_counter() - t0

    Path("/proc/self/clear_refs").write_text("5")
    before = _status("VmRSS:")
    for _ in range(warmup):
        run()
    times = [run() for _ in range(repeats)]
    seconds = statistics.median(times)
    flops = 6 * size * size * dim
    return {
        "seconds": seconds,
        "times": times,
        "peak_mb": _status("VmHWM:") - before,
        "gflops": flops / seconds / 1e9,
        "matmul_peak_gflops": peak,
    }


def _repeats(size: int, repeats: int | None) -> tuple[int, int]:
    if repeats is not None:
        return repeats, 1 if size <= 4096 else 0
    if size <= 4096:
        return 5, 1
    if size <= 16384:
        return 3, 0
    return 1, 0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[4096, 16384, 65536])
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--losses", nargs="+", default=["clip", "siglip"], choices=["clip", "siglip"])
    parser.add_argument("--repeats", type=int, default=None, help="default: 5 (B<=4096), 3 (<=16384), 1")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads per process (default 1: on a shared machine, OpenMP barriers across busy cores "
        "dominate the timings of both libraries)",
    )
    parser.add_argument("--open-clip-max-gb", type=float, default=8.0)
    parser.add_argument("--json", type=Path, default=None, help="also write the raw results here")
    parser.add_argument("--child", nargs=3, metavar=("LIB", "LOSS", "B"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        lib, loss, size = args.child[0], args.child[1], int(args.child[2])
        repeats, warmup = _repeats(size, args.repeats)
        print(json.dumps(child(lib, loss, size, args.dim, repeats, warmup, args.threads)))
        return

    try:
        version = importlib.metadata.version("open-clip-torch")
    except importlib.metadata.PackageNotFoundError:
        sys.exit("open-clip-torch is not installed: pip install --no-deps -r benchmarks/requirements.txt")
    import torch

    load = os.getloadavg()
    print(
        f"# torch {torch.__version__}, open-clip-torch {version}, D={args.dim}, fp32, "
        f"{args.threads} thread(s), {os.cpu_count()} CPUs, load average {load[0]:.1f} at start",
        flush=True,
    )
    header = (
        "| loss | B | scibind s | open_clip s | time ratio | scibind peak MB | open_clip peak MB "
        "| memory ratio | scibind GFLOP/s (% of peak) | open_clip GFLOP/s (% of peak) |"
    )
    print(header)
    print("|---" * (header.count("|") - 1) + "|")
    results = []
    for size in args.sizes:
        for loss in args.losses:
            row = {"loss": loss, "B": size}
            for lib in ("scibind", "open_clip"):
                need_gb = OPEN_CLIP_GB_AT_16K[loss] * (size / 16384) ** 2
                if lib == "open_clip" and need_gb > args.open_clip_max_gb:
                    row[lib] = {"skipped": f"needs ≈ {need_gb:.0f} GB"}
                    continue
                cmd = [sys.executable, __file__, "--child", lib, loss, str(size), "--dim", str(args.dim)]
                cmd += ["--threads", str(args.threads)]
                if args.repeats is not None:
                    cmd += ["--repeats", str(args.repeats)]
                env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
                proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
                if proc.returncode != 0:
                    row[lib] = {"skipped": f"failed (exit {proc.returncode}): {proc.stderr.strip()[-200:]}"}
                else:
                    row[lib] = json.loads(proc.stdout.strip().splitlines()[-1])
            results.append(row)
            print(_format(row), flush=True)
    load = os.getloadavg()
    print(f"# load average {load[0]:.1f} at the end")
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2))


def _format(row: dict) -> str:
    s, o = row["scibind"], row["open_clip"]

    def cell(r: dict, key: str, fmt: str) -> str:
        return fmt.format(r[key]) if key in r else r.get("skipped", "—")

    def perf(r: dict) -> str:
        if "gflops" not in r:
            return r.get("skipped", "—")
        return f"{r['gflops']:.1f} ({100 * r['gflops'] / r['matmul_peak_gflops']:.0f} %)"

    both = "seconds" in s and "seconds" in o
    time_ratio = f"{s['seconds'] / o['seconds']:.2f}" if both else "—"
    mem_ratio = f"1/{o['peak_mb'] / max(s['peak_mb'], 1e-9):.0f}" if both else "—"
    return (
        f"| {row['loss']} | {row['B']} | {cell(s, 'seconds', '{:.2f}')} | {cell(o, 'seconds', '{:.2f}')} | "
        f"{time_ratio} | {cell(s, 'peak_mb', '{:.0f}')} | {cell(o, 'peak_mb', '{:.0f}')} | {mem_ratio} | "
        f"{perf(s)} | {perf(o)} |"
    )


if __name__ == "__main__":
    main()
