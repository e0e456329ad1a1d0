"""Volumes/s of a CT preprocessing pipeline: MONAI's plain ``LoadImaged`` pipeline vs scibind's cached reader.

Writes ``--n`` synthetic CT volumes (``--shape``, int16 HU, 0.7 x 0.7 x 1.25 mm, LPS-like LAS affine) as
NIfTI to a temporary folder, then runs the same preprocessing, load + orientation to RAS + resampling to
1.5 mm + a [-1000, 400] HU window, two ways:

- ``monai``: ``Compose([LoadImaged, EnsureChannelFirstd, Orientationd, Spacingd, ScaleIntensityRanged])``,
  every epoch from the files (what a plain MONAI ``Dataset`` does);
- ``scibind``: ``medical_imaging/volume`` with the same options and a RAM budget (``--ram-mb``) plus a disk
  tier (``--disk-mb``); epoch 1 fills the cache, epoch 2 reads from it.

Prints volumes/s per epoch, the speed-up of scibind's second epoch over MONAI, the largest RAM the cache held
(never above the budget) and the process's peak RSS.

Usage: ``python benchmarks/volume_loading.py [--n 50] [--shape 512 512 200] [--ram-mb 1024]
[--disk-mb 8192]``.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

SPACING_MM = (0.7, 0.7, 1.25)
TARGET_MM = (1.5, 1.5, 1.5)
WINDOW_HU = (-1000.0, 400.0)


def write_volumes(folder: Path, n: int, shape: tuple[int, int, int], seed: int) -> list[Path]:
    """``n`` NIfTI CT volumes: a body ellipsoid with lungs and noise, in HU (int16)."""
    from scibind_medical_imaging.writers import write_nifti

    rng = np.random.default_rng(seed)
    grid = np.ogrid[tuple(slice(-1, 1, complex(0, s)) for s in shape)]
    base = np.where(sum(g**2 for g in grid) <= 0.8, 40.0, -1000.0).astype(np.float32)
    lung = ((np.abs(grid[0]) - 0.35) ** 2 / 0.06 + grid[1] ** 2 / 0.3 + grid[2] ** 2 / 0.5) <= 1
    base[np.broadcast_to(lung, shape)] = -850.0
    affine = np.diag([-SPACING_MM[0], SPACING_MM[1], SPACING_MM[2], 1.0])
    paths = []
    for i in range(n):
        noisy = base + rng.normal(0, 20, size=shape).astype(np.float32)
        paths.append(write_nifti(noisy, affine, folder / f"ct_{i:03d}.nii"))
    return paths


def monai_epoch(paths: list[Path]) -> float:
    """Seconds for one epoch of MONAI's plain dictionary pipeline."""
    from monai import transforms as mt

    pipeline = mt.Compose(
        [
            mt.LoadImaged("image", image_only=True),
            mt.EnsureChannelFirstd("image"),
            mt.Orientationd("image", axcodes="RAS", labels=(("L", "R"), ("P", "A"), ("I", "S"))),
            mt.Spacingd("image", pixdim=TARGET_MM, mode="bilinear", padding_mode="border"),
            mt.ScaleIntensityRanged("image", *WINDOW_HU, b_min=0.0, b_max=1.0, clip=True),
        ]
    )
    start = time.perf_counter()
    for path in paths:
        _ = pipeline({"image": str(path)})["image"]
    return time.perf_counter() - start


def scibind_epochs(
    paths: list[Path], ram_mb: float, disk_mb: float, cache_dir: Path
) -> tuple[list[float], int]:
    """Seconds of two epochs of the cached reader, and the largest RAM the cache held (bytes)."""
    from scibind_medical_imaging.readers import VolumeReader

    reader = VolumeReader(
        cache_ram_mb=ram_mb,
        cache_dir=cache_dir,
        cache_disk_mb=disk_mb,
        orientation="RAS",
        spacing_mm=list(TARGET_MM),
        window_hu=list(WINDOW_HU),
    )
    _, cache = reader.config()
    times, peak = [], 0
    for _ in range(2):
        start = time.perf_counter()
        for path in paths:
            _ = reader.read(str(path), record_id=path.stem)
            peak = max(peak, cache.ram_used_bytes)
        times.append(time.perf_counter() - start)
    return times, peak


def main() -> None:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50)
    parser.add_argument("--shape", type=int, nargs=3, default=(512, 512, 200))
    parser.add_argument("--ram-mb", type=float, default=1024)
    parser.add_argument("--disk-mb", type=float, default=8192)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--workdir", type=Path, default=None, help="Folder for the volumes (default: a temp dir)."
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        folder = Path(tmp)
        t0 = time.perf_counter()
        paths = write_volumes(folder / "volumes", args.n, tuple(args.shape), args.seed)
        print(f"wrote {args.n} volumes of {tuple(args.shape)} in {time.perf_counter() - t0:.1f} s")
        monai_s = monai_epoch(paths)
        (first, second), peak = scibind_epochs(paths, args.ram_mb, args.disk_mb, folder / "cache")
    n = args.n
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{'pipeline':32s} {'volumes/s':>10s}")
    print(f"{'MONAI LoadImaged (every epoch)':32s} {n / monai_s:10.2f}")
    print(f"{'scibind epoch 1 (fills cache)':32s} {n / first:10.2f}")
    print(f"{'scibind epoch 2 (cached)':32s} {n / second:10.2f}")
    print(f"speed-up of scibind epoch 2 over MONAI: {monai_s / second:.1f}x")
    print(f"cache RAM peak {peak / 2**20:.0f} MiB of a {args.ram_mb:.0f} MiB budget")
    print(f"process peak RSS {rss_mib:.0f} MiB")


if __name__ == "__main__":
    main()
