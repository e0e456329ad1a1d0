"""Reading the tiles of a grid, in this process or in worker processes that each hold their own slide handle.

OpenSlide handles are not shared between processes: each worker opens the slide once (pool initializer) and
reads contiguous chunks of the grid. Chunks come back in grid order. Nothing here imports torch, so workers
start quickly.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from multiprocessing import get_context, shared_memory
from pathlib import Path
from typing import Any

import numpy as np

from scibind_pathology.slide import open_slide
from scibind_pathology.tiling import TileGrid, read_tile

__all__ = ["iter_tile_batches", "read_tiles", "tile_pool"]

_WORKER: dict[str, Any] = {}


def _init_worker(path: str, slide_mpp: float | None, native: bool) -> None:
    _WORKER["slide"] = open_slide(path, slide_mpp=slide_mpp, native=native)


def read_tiles(
    slide: Any, grid: TileGrid, start: int, stop: int, out: np.ndarray | None = None
) -> np.ndarray:
    """Tiles ``start:stop`` of ``grid`` as ``uint8[n, tile_size, tile_size, 3]`` (into ``out`` when given)."""
    size = grid.config.tile_size
    if out is None:
        out = np.empty((max(stop - start, 0), size, size, 3), dtype=np.uint8)
    native = slide.native if not grid.resized else None
    shape = (grid.read_size, grid.read_size)
    for i, (x, y) in enumerate(grid.coords[start:stop].tolist()):
        # aligned native tiles decode straight into the batch; anything else is read and copied
        if native is None or native.read(x, y, grid.read_level, shape, out=out[i]) is None:
            out[i] = read_tile(slide, grid, x, y)
    return out


def _worker_chunk(grid: TileGrid, start: int, stop: int) -> tuple[str, tuple[int, ...]]:
    # tiles travel through shared memory: pickling megabytes of pixels through a pipe costs more than decoding
    size = grid.config.tile_size
    shape = (max(stop - start, 0), size, size, 3)
    block = shared_memory.SharedMemory(create=True, size=max(1, int(np.prod(shape))))
    try:
        read_tiles(_WORKER["slide"], grid, start, stop, out=np.ndarray(shape, np.uint8, buffer=block.buf))
    except BaseException:
        block.close()
        block.unlink()
        raise
    block.close()
    return block.name, shape


def _collect(result: tuple[str, tuple[int, ...]]) -> np.ndarray:
    name, shape = result
    block = shared_memory.SharedMemory(name=name)
    try:
        return np.array(np.ndarray(shape, np.uint8, buffer=block.buf))
    finally:
        block.close()
        block.unlink()


def tile_pool(path: str | Path, workers: int, *, slide_mpp: float | None = None, native: bool = True) -> Any:
    """A process pool whose workers each hold an open handle on the slide at ``path``.

    Pass it to :func:`iter_tile_batches` (``executor=``) to reuse started workers; close it with
    ``shutdown()`` or a ``with`` block.
    """
    return ProcessPoolExecutor(
        max_workers=workers,
        mp_context=get_context("spawn"),
        initializer=_init_worker,
        initargs=(str(path), slide_mpp, native),
    )


def iter_tile_batches(
    path: str | Path,
    grid: TileGrid,
    *,
    batch_size: int = 64,
    workers: int = 1,
    slide_mpp: float | None = None,
    native: bool = True,
    slide: Any | None = None,
    executor: Any | None = None,
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(start, tiles)`` batches of the grid in order; ``tiles`` is ``uint8[n, S, S, 3]``.

    Args:
        path: The slide file.
        grid: Tiles to read (from :func:`scibind_pathology.tiling.plan_tiles`).
        batch_size: Tiles per batch.
        workers: Processes reading tiles (1: this process).
        slide_mpp: µm/px for slides without units.
        native: Decode aligned reads straight from TIFF tiles.
        slide: An already open slide to use when ``workers == 1``.
        executor: A started :func:`tile_pool` of this slide to use instead of starting one.
    """
    starts = list(range(0, len(grid), batch_size))
    if workers <= 1 and executor is None:
        own = slide is None
        handle = open_slide(path, slide_mpp=slide_mpp, native=native) if own else slide
        try:
            for start in starts:
                yield start, read_tiles(handle, grid, start, min(start + batch_size, len(grid)))
        finally:
            if own:
                handle.close()
        return
    pool = executor if executor is not None else tile_pool(path, workers, slide_mpp=slide_mpp, native=native)
    window = 2 * max(workers, 2)
    pending: list[tuple[int, Any]] = []
    try:
        for start in starts:
            stop = min(start + batch_size, len(grid))
            part = replace(grid, coords=grid.coords[start:stop], tissue=grid.tissue[start:stop])
            pending.append((start, pool.submit(_worker_chunk, part, 0, stop - start)))
            if len(pending) >= window:
                first, future = pending.pop(0)
                yield first, _collect(future.result())
        while pending:
            first, future = pending.pop(0)
            yield first, _collect(future.result())
    finally:
        if executor is None:
            pool.shutdown(cancel_futures=True)
        for _, future in pending:  # abandoned early: free the blocks of finished chunks
            if not future.cancelled() and future.done() and future.exception() is None:
                _collect(future.result())
