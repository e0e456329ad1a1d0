"""Tiling throughput of scibind-pathology against a plain OpenSlide loop and the raw JPEG decode rate.

A ~20k x 20k JPEG-compressed pyramidal TIFF (256-px tiles, tissue-like regions on white) is generated once.
Every contender reads the same tissue tiles at level 0 (256 px, the tissue mask's tiles):

- ``scibind``: ``segment_tissue`` + ``plan_tiles`` + ``iter_tile_batches`` (1 and 2 worker processes);
  aligned requests are decoded straight from the TIFF tiles, others go through OpenSlide.
- ``openslide``: ``OpenSlide.read_region`` + ``convert("RGB")`` per tile (1 and 2 processes), the loop most
  pipelines run.
- ``decode``: the same tiles' JPEG bytes, already in memory, decoded with imagecodecs (the limit).

It also checks that scibind's pixels equal OpenSlide's within JPEG decoder rounding (max abs difference).

Run: OMP_NUM_THREADS=1 .venv/bin/python benchmarks/wsi_tiling.py [--size 20000] [--out /tmp/wsi-bench]
"""

from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import nullcontext
from dataclasses import replace
from multiprocessing import get_context
from pathlib import Path

import numpy as np

TILE = 256
MPP = 0.25


def _texture(seed: int = 0) -> np.ndarray:
    from scibind_pathology.synthetic import render_tissue

    rng = np.random.default_rng(seed)
    # a fully-tissue texture: render at a large tissue fraction and keep the centre
    field = render_tissue(rng, 1536, MPP * 4, "adenocarcinoma", "strong")
    return field[512:1024, 512:1024]


def write_benchmark_slide(path: Path, size: int) -> Path:
    """A ``size``-square pyramidal JPEG TIFF: textured tissue blobs (about half the area) on white."""
    import tifffile

    texture = _texture()
    rng = np.random.default_rng(1)
    cells = size // TILE + 1
    blobs = np.zeros((cells, cells), bool)
    yy, xx = np.mgrid[0:cells, 0:cells] / cells
    for _ in range(6):
        cx, cy, r = rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.8), rng.uniform(0.12, 0.25)
        blobs |= (xx - cx) ** 2 + (yy - cy) ** 2 < r**2
    white = np.full((TILE, TILE, 3), 245, np.uint8)

    def tile_at(ty: int, tx: int, scale: int) -> np.ndarray:
        if scale == 1:
            if not blobs[ty, tx]:
                return white
            oy, ox = (ty * 37) % 256, (tx * 53) % 256
            return np.ascontiguousarray(texture[oy : oy + TILE, ox : ox + TILE])
        # a coarser level: each level-0 tile becomes a (TILE / scale)-px block of this tile
        block = np.zeros((scale, scale), bool)
        part = blobs[ty * scale : (ty + 1) * scale, tx * scale : (tx + 1) * scale]
        block[: part.shape[0], : part.shape[1]] = part
        inside = np.kron(block, np.ones((TILE // scale, TILE // scale), bool))
        small = np.tile(texture[::scale, ::scale][: TILE // scale, : TILE // scale], (scale, scale, 1))
        return np.where(inside[..., None], small, white)

    kw = {"tile": (TILE, TILE), "photometric": "rgb", "compression": "jpeg", "compressionargs": {"level": 85}}
    with tifffile.TiffWriter(path, bigtiff=True) as tw:
        for level, scale in enumerate((1, 4, 16)):
            side = size // scale
            n = -(-side // TILE)
            tiles = (tile_at(ty, tx, scale) for ty in range(n) for tx in range(n))
            extra = (
                {"resolution": (1e4 / MPP, 1e4 / MPP), "resolutionunit": "CENTIMETER", "subfiletype": 0}
                if level == 0
                else {"subfiletype": 1}
            )
            tw.write(tiles, shape=(side, side, 3), dtype=np.uint8, metadata=None, **kw, **extra)
    return path


def _openslide_chunk(path: str, coords: np.ndarray) -> int:
    import openslide

    with openslide.OpenSlide(path) as slide:
        for x, y in coords:
            np.asarray(slide.read_region((int(x), int(y)), 0, (TILE, TILE)).convert("RGB"))
    return len(coords)


def _decode_chunk(blobs: list[bytes]) -> int:
    import imagecodecs

    for data in blobs:
        imagecodecs.jpeg8_decode(data)
    return len(blobs)


def _head(arg):
    return arg if isinstance(arg, str) else arg[:2]


def _parallel(fn, parts: list, workers: int) -> float:
    """Seconds to run ``fn`` over ``parts`` in ``workers`` processes, started and warmed up beforehand."""
    if workers == 1:
        fn(*[_head(p) for p in parts[0]])  # warm-up on two items
        start = time.perf_counter()
        for part in parts:
            fn(*part)
        return time.perf_counter() - start
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        list(pool.map(fn, *zip(*[[_head(p) for p in part] for part in parts], strict=True)))
        start = time.perf_counter()
        list(pool.map(fn, *zip(*parts, strict=True)))
        return time.perf_counter() - start


def main() -> None:
    """Generate the slide, time the contenders, print a table."""
    import openslide
    import tifffile
    from scibind_pathology.extract import iter_tile_batches, tile_pool
    from scibind_pathology.slide import open_slide
    from scibind_pathology.tiling import TilingConfig, plan_tiles
    from scibind_pathology.tissue import segment_tissue

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=20_000)
    parser.add_argument("--out", type=Path, default=Path("/tmp/wsi-bench"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"bench-{args.size}.tif"
    if not path.exists():
        start = time.perf_counter()
        write_benchmark_slide(path, args.size)
        print(f"generated {path} ({path.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - start:.1f} s")

    config = TilingConfig(mpp=MPP, tile_size=TILE, min_tissue=0.5)
    results: dict[str, float] = {}
    start = time.perf_counter()
    with open_slide(path) as slide:
        mask = segment_tissue(slide)
        grid = plan_tiles(slide, config, mask)
    planned = time.perf_counter() - start
    print(f"tissue mask + grid: {planned:.2f} s for {len(grid)} tissue tiles", flush=True)
    warm = replace(grid, coords=grid.coords[:8], tissue=grid.tissue[:8])
    for workers in (1, 2):
        with open_slide(path) as slide, tile_pool(path, workers) if workers > 1 else nullcontext() as pool:
            for _ in iter_tile_batches(path, warm, batch_size=4, workers=workers, slide=slide, executor=pool):
                pass
            start = time.perf_counter()
            n = 0
            for _, tiles in iter_tile_batches(
                path, grid, batch_size=64, workers=workers, slide=slide, executor=pool
            ):
                n += len(tiles)
            seconds = time.perf_counter() - start
        results[f"scibind, {workers} worker(s)"] = n / seconds
        print(f"scibind {workers}w: {n} tiles in {seconds:.2f} s", flush=True)
    coords = grid.coords
    for workers in (1, 2):
        parts = [(str(path), chunk) for chunk in np.array_split(coords, workers)]
        results[f"OpenSlide read_region, {workers} process(es)"] = len(coords) / _parallel(
            _openslide_chunk, parts, workers
        )

    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        cols = -(-page.imagewidth // TILE)
        fd = os.open(path, os.O_RDONLY)
        blobs = []
        for x, y in coords:
            index = (y // TILE) * cols + x // TILE
            blobs.append(os.pread(fd, page.databytecounts[index], page.dataoffsets[index]))
        os.close(fd)
    for workers in (1, 2):
        step = -(-len(blobs) // workers)
        parts = [(blobs[i : i + step],) for i in range(0, len(blobs), step)]
        results[f"JPEG decode only (imagecodecs), {workers} process(es)"] = len(blobs) / _parallel(
            _decode_chunk, parts, workers
        )

    rng = np.random.default_rng(0)
    sample = coords[rng.choice(len(coords), size=min(200, len(coords)), replace=False)]
    worst = 0
    with open_slide(path) as ours, openslide.OpenSlide(str(path)) as ref:
        for x, y in sample:
            a = ours.read_region(int(x), int(y), 0, (TILE, TILE)).astype(int)
            b = np.asarray(ref.read_region((int(x), int(y)), 0, (TILE, TILE)).convert("RGB"), dtype=int)
            worst = max(worst, int(np.abs(a - b).max()))

    print(f"\n{len(coords)} tissue tiles of {TILE} px at level 0 ({args.size} px square slide)")
    print(f"tissue mask + grid (once per slide, not in the rates): {planned:.2f} s\n")
    print("| reader | tiles/s |")
    print("|---|---|")
    for name, rate in results.items():
        print(f"| {name} | {rate:,.0f} |")
    for w in (1, 2):
        ours = results[f"scibind, {w} worker(s)"]
        loop = results[f"OpenSlide read_region, {w} process(es)"]
        limit = results[f"JPEG decode only (imagecodecs), {w} process(es)"]
        print(f"{w} worker(s): {ours / loop:.1f}x the OpenSlide loop, {ours / limit:.2f}x the decode limit")
    print(f"max abs pixel difference to OpenSlide over {len(sample)} tiles: {worst}")


if __name__ == "__main__":
    main()
