"""Random 256-row minibatches of an h5ad: anndata backed indexing vs scibind's block-shuffled streaming.

Writes a synthetic counts matrix (dense and CSR) to a temporary folder, then times per batch:

- ``anndata backed``: ``adata = anndata.read_h5ad(path, backed="r"); adata.X[sorted random rows]``;
- ``block-shuffled stream``: ``scibind_spatial_omics.streaming.H5adBatches(path, memory_budget_mb=0)``
  (contiguous blocks shuffled within a buffer; CSR blocks read in one call each, contiguous dense X
  memory-mapped and gathered per batch), rows shuffled singly (``run_rows=1``) and in runs of
  ``--run-rows`` consecutive rows (``run_rows=8``, the default: longer contiguous copies, see the randomness
  notes);
- ``in memory``: the same class when the matrix fits the budget (a permutation of a loaded matrix;
  the one-off load is included).

Streamed and in-memory times are one whole epoch divided by its batches, so every read is counted (not
opening the file; the anndata time excludes opening the file and a first warm-up batch). Both sides return
a new ``float32[256, G]`` array per batch.

Usage: ``python benchmarks/h5ad_batches.py [--n-obs 50000] [--n-vars 2000] [--batches 40] [--run-rows 8]
[--repeats 3]``; times are medians over the repeats, speed-ups medians of the per-repeat ratios.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def write_matrices(folder: Path, n_obs: int, n_vars: int, density: float, seed: int) -> dict[str, Path]:
    """Write the same counts as dense and CSR h5ad files."""
    import anndata as ad
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    csr = sp.random(n_obs, n_vars, density=density, format="csr", dtype=np.float32, random_state=rng)
    csr.data = np.ceil(csr.data * 10).astype(np.float32)
    paths = {"CSR": folder / "csr.h5ad", "dense": folder / "dense.h5ad"}
    ad.AnnData(X=csr).write_h5ad(paths["CSR"])
    ad.AnnData(X=csr.toarray()).write_h5ad(paths["dense"])
    return paths


def time_anndata(path: Path, n_obs: int, batch: int, n_batches: int, seed: int) -> float:
    """Seconds per batch of ``adata.X[idx]`` in backed mode."""
    import anndata as ad

    adata = ad.read_h5ad(path, backed="r")
    rng = np.random.default_rng(seed)
    batches = [np.sort(rng.choice(n_obs, batch, replace=False)) for _ in range(n_batches)]
    _ = adata.X[batches[0]]
    start = time.perf_counter()
    for idx in batches:
        _ = adata.X[idx]
    elapsed = (time.perf_counter() - start) / n_batches
    adata.file.close()
    return elapsed


def time_stream(path: Path, batch: int, budget_mb: float, seed: int, run_rows: int = 1) -> float:
    """Seconds per batch of :class:`H5adBatches` over one whole epoch (every block read counted)."""
    from scibind_spatial_omics.streaming import H5adBatches

    batches = H5adBatches(
        path,
        batch,
        memory_budget_mb=budget_mb,
        seed=seed,
        block_size=1024,
        buffer_blocks=8,
        run_rows=run_rows,
    )
    start = time.perf_counter()
    count = sum(1 for _ in batches.epoch(seed))
    return (time.perf_counter() - start) / count


def main() -> None:
    """Print the comparison table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-obs", type=int, default=50_000)
    parser.add_argument("--n-vars", type=int, default=2_000)
    parser.add_argument("--density", type=float, default=0.1)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--run-rows", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_matrices(Path(tmp), args.n_obs, args.n_vars, args.density, args.seed)
        print(
            f"{args.n_obs} x {args.n_vars}, density {args.density}, {args.batch_size}-row batches (ms/batch)"
        )
        runs = f"runs of {args.run_rows}"
        print(
            f"{'layout':<8}{'anndata backed':>16}{'stream':>10}{'speed-up':>10}"
            f"{runs:>14}{'speed-up':>10}{'in memory':>12}"
        )
        for layout, path in paths.items():
            times = np.array(
                [
                    [
                        time_anndata(path, args.n_obs, args.batch_size, args.batches, args.seed + r),
                        time_stream(path, args.batch_size, 0.0, args.seed + r, run_rows=1),
                        time_stream(path, args.batch_size, 0.0, args.seed + r, run_rows=args.run_rows),
                        time_stream(path, args.batch_size, 1e9, args.seed + r),
                    ]
                    for r in range(args.repeats)
                ]
            )
            backed, stream, in_runs, memory = np.median(times, axis=0)
            # speed-ups: median over repeats of the ratio within one repeat (same load)
            up_stream = np.median(times[:, 0] / times[:, 1])
            up_runs = np.median(times[:, 0] / times[:, 2])
            print(
                f"{layout:<8}{backed * 1e3:>16.2f}{stream * 1e3:>10.2f}{up_stream:>9.1f}x"
                f"{in_runs * 1e3:>14.2f}{up_runs:>9.1f}x{memory * 1e3:>12.2f}"
            )
        print(f"medians of {args.repeats} repeats; speed-up = median of the per-repeat ratios")


if __name__ == "__main__":
    main()
