"""Tiling a slide at an exact µm/px: tile grid, tissue filtering, tile reads, the TRIDENT/CLAM h5 layout.

A tile is ``tile_size`` pixels at ``mpp`` µm/px. It is read from the coarsest level at least that fine (a
level within ``mpp_tolerance`` of ``mpp`` is read as is) and resized to ``tile_size`` when the scales differ,
so a 0.265 µm/px scan tiled at 0.5 µm/px gives tiles of exactly 0.5 µm/px, not "20x" ones.

Coordinates are level-0 pixels of the tiles' top-left corners, saved as the ``coords`` dataset of an h5
file with ``patch_size`` (pixels at the target scale), ``patch_size_level0`` and the µm/px attributes, the
layout TRIDENT and CLAM read.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scibind.errors import ConfigError, ReadError

__all__ = ["TileGrid", "TilingConfig", "load_coords", "plan_tiles", "read_tile", "save_coords"]


@dataclass(frozen=True)
class TilingConfig:
    """How a slide is cut into tiles.

    Attributes:
        mpp: Target µm/px of the tiles.
        tile_size: Tile side in pixels at ``mpp``.
        overlap: Overlap of neighbouring tiles in pixels at ``mpp``.
        min_tissue: Keep tiles whose tissue fraction is at least this (0 keeps every tile).
        mpp_tolerance: A level whose µm/px is within this relative distance of ``mpp`` is read unresized.
        mask_mpp: µm/px of the tissue mask.
        min_area_um2: Tissue pieces smaller than this (µm²) are dropped from the mask.
    """

    mpp: float = 0.5
    tile_size: int = 256
    overlap: int = 0
    min_tissue: float = 0.25
    mpp_tolerance: float = 0.02
    mask_mpp: float = 8.0
    min_area_um2: float = 20_000.0

    def __post_init__(self) -> None:
        if not (self.mpp > 0 and math.isfinite(self.mpp)):
            raise ConfigError(f"tiling mpp must be a positive number of µm per pixel, got {self.mpp}")
        if self.tile_size < 8:
            raise ConfigError(f"tile_size must be at least 8 pixels, got {self.tile_size}")
        if not 0 <= self.overlap < self.tile_size:
            raise ConfigError(f"overlap must be in [0, tile_size={self.tile_size}), got {self.overlap}")
        if not 0.0 <= self.min_tissue <= 1.0:
            raise ConfigError(f"min_tissue is a fraction in [0, 1], got {self.min_tissue}")
        if not 0.0 <= self.mpp_tolerance < 0.5:
            raise ConfigError(f"mpp_tolerance must be in [0, 0.5), got {self.mpp_tolerance}")

    def to_dict(self) -> dict[str, Any]:
        """JSON form (also part of cache keys)."""
        return asdict(self)


@dataclass
class TileGrid:
    """The tiles of one slide.

    Attributes:
        coords: ``int64[N, 2]`` level-0 ``(x, y)`` of each tile's top-left corner.
        tissue: ``float32[N]`` tissue fraction of each tile (1.0 when no mask was used).
        config: The tiling configuration.
        read_level: The level tiles are read from.
        read_size: Side of the region read at ``read_level`` (pixels).
        patch_size_level0: Side of a tile in level-0 pixels.
        level0_mpp: µm/px of the slide's level 0.
    """

    coords: np.ndarray
    tissue: np.ndarray
    config: TilingConfig
    read_level: int
    read_size: int
    patch_size_level0: int
    level0_mpp: float

    def __len__(self) -> int:
        return len(self.coords)

    @property
    def resized(self) -> bool:
        """Whether tiles are resized after reading (the read level's scale differs from the target)."""
        return self.read_size != self.config.tile_size


def plan_tiles(slide: Any, config: TilingConfig, mask: Any | None = None) -> TileGrid:
    """The grid of tiles of ``slide`` at ``config.mpp``, filtered by tissue when ``mask`` is given.

    Args:
        slide: A :class:`scibind_pathology.slide.Slide`.
        config: Target scale, tile size, overlap, tissue threshold.
        mask: A :class:`scibind_pathology.tissue.TissueMask`; ``None`` keeps every tile.

    Returns:
        The :class:`TileGrid` (row-major order: y, then x).
    """
    level = slide.best_level_for_mpp(config.mpp, config.mpp_tolerance)
    level_mpp = slide.level_mpp(level)
    ratio = config.mpp / level_mpp
    exact = abs(ratio - 1.0) <= config.mpp_tolerance
    read_size = config.tile_size if exact else max(1, round(config.tile_size * ratio))
    downsample = slide.levels[level].downsample
    if exact:
        patch0 = max(1, round(config.tile_size * downsample))
        stride0 = max(1, round((config.tile_size - config.overlap) * downsample))
    else:
        scale0 = config.mpp / slide.mpp
        patch0 = max(1, round(config.tile_size * scale0))
        stride0 = max(1, round((config.tile_size - config.overlap) * scale0))
    width, height = slide.dimensions
    xs = np.arange(0, width - patch0 + 1, stride0, dtype=np.int64)
    ys = np.arange(0, height - patch0 + 1, stride0, dtype=np.int64)
    grid_y, grid_x = np.meshgrid(ys, xs, indexing="ij")
    coords = np.stack([grid_x.ravel(), grid_y.ravel()], axis=1).reshape(-1, 2)
    tissue = np.ones(len(coords), dtype=np.float32)
    if mask is not None and len(coords):
        tissue = mask.tissue_fractions(coords, patch0).astype(np.float32)
        keep = tissue >= config.min_tissue if config.min_tissue > 0 else np.ones(len(coords), dtype=bool)
        coords, tissue = coords[keep], tissue[keep]
    return TileGrid(coords, tissue, config, level, read_size, patch0, slide.mpp)


def read_tile(slide: Any, grid: TileGrid, x: int, y: int) -> np.ndarray:
    """RGB ``uint8[tile_size, tile_size, 3]`` of the tile at level-0 ``(x, y)``, at ``grid.config.mpp``."""
    region = slide.read_region(int(x), int(y), grid.read_level, (grid.read_size, grid.read_size))
    if not grid.resized:
        return region
    from PIL import Image

    size = grid.config.tile_size
    return np.asarray(Image.fromarray(region).resize((size, size), Image.Resampling.BILINEAR))


def save_coords(path: str | Path, grid: TileGrid, *, name: str, extra: dict[str, Any] | None = None) -> Path:
    """Write ``grid`` as ``coords`` (+ ``tissue_fraction``) in the TRIDENT/CLAM h5 layout, atomically.

    Attributes of ``coords``: ``patch_size``, ``patch_size_level0``, ``target_mpp``, ``level0_mpp``,
    ``overlap``, ``read_level``, ``name``, plus ``extra``.

    Args:
        path: The ``.h5`` file to write.
        grid: The tiles.
        name: The slide's name (file stem).
        extra: More attributes (e.g. the tissue mask's source).
    """
    import h5py
    from scibind.atomic import atomic_replace

    def write(tmp: Path) -> None:
        with h5py.File(tmp, "w") as h5:
            dset = h5.create_dataset("coords", data=grid.coords.astype(np.int64))
            for key, value in coords_attrs(grid, name, extra).items():
                dset.attrs[key] = value
            h5.create_dataset("tissue_fraction", data=grid.tissue.astype(np.float32))

    return atomic_replace(path, write)


def coords_attrs(grid: TileGrid, name: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The attributes of the ``coords`` dataset (see :func:`save_coords`)."""
    return {
        "patch_size": int(grid.config.tile_size),
        "patch_size_level0": int(grid.patch_size_level0),
        "target_mpp": float(grid.config.mpp),
        "level0_mpp": float(grid.level0_mpp),
        "overlap": int(grid.config.overlap),
        "read_level": int(grid.read_level),
        "read_size": int(grid.read_size),
        "min_tissue": float(grid.config.min_tissue),
        "name": name,
        **(extra or {}),
    }


def load_coords(path: str | Path) -> tuple[np.ndarray, dict[str, Any]]:
    """``coords`` (``int64[N, 2]``) and their attributes from a TRIDENT/CLAM-layout h5 file.

    Raises:
        ReadError: The file is not HDF5 or has no ``coords`` dataset.
    """
    import h5py

    try:
        with h5py.File(path, "r") as h5:
            if "coords" not in h5:
                raise ReadError(
                    f"no 'coords' dataset (found: {sorted(h5)}); expected the TRIDENT/CLAM layout", path=path
                )
            return np.asarray(h5["coords"][()], dtype=np.int64), dict(h5["coords"].attrs)
    except OSError as exc:
        raise ReadError(f"not a readable HDF5 file ({exc})", path=path) from exc
