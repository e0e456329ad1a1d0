"""Tiling: the CMU slide's grids against an independent computation, h5 layout, properties of the grid."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scibind.errors import ConfigError
from scibind_pathology.slide import Level, open_slide
from scibind_pathology.tiling import TilingConfig, load_coords, plan_tiles, read_tile, save_coords
from scibind_pathology.tissue import segment_tissue

W, H, MPP = 2220, 2967, 0.499


def independent_grid(patch0: int, stride0: int) -> np.ndarray:
    return np.array(
        [(x, y) for y in range(0, H - patch0 + 1, stride0) for x in range(0, W - patch0 + 1, stride0)]
    )


@pytest.mark.parametrize(
    ("mpp", "patch0", "count"),
    [(0.5, 256, 8 * 11), (1.0, round(256 * 1.0 / MPP), 4 * 5)],
)
def test_cmu_grid_matches_independent_computation(cmu_slide: Path, mpp: float, patch0: int, count: int):
    with open_slide(cmu_slide) as slide:
        grid = plan_tiles(slide, TilingConfig(mpp=mpp, tile_size=256))
        assert grid.patch_size_level0 == patch0 and len(grid) == count
        np.testing.assert_array_equal(grid.coords, independent_grid(patch0, patch0))
        assert grid.read_level == 0 and grid.read_size == patch0  # 0.5 reads 256 px as is; 1.0 reads 513
        tile = read_tile(slide, grid, *grid.coords[count // 2])
    assert tile.shape == (256, 256, 3) and tile.dtype == np.uint8


def test_cmu_tissue_filter_and_h5_round_trip(cmu_slide: Path, tmp_path: Path):
    with open_slide(cmu_slide) as slide:
        mask = segment_tissue(slide)
        config = TilingConfig(mpp=0.5, tile_size=256, min_tissue=0.25)
        grid = plan_tiles(slide, config, mask)
    every = independent_grid(256, 256)
    ds = mask.downsample
    fractions = np.array(
        [
            mask.mask[
                int(y // ds) : int(np.ceil((y + 256) / ds)), int(x // ds) : int(np.ceil((x + 256) / ds))
            ].mean()
            for x, y in every
        ]
    )
    expected = every[fractions >= 0.25]
    np.testing.assert_array_equal(grid.coords, expected)
    assert 0 < len(grid) < len(every)
    path = save_coords(tmp_path / "cmu.h5", grid, name="cmu")
    coords, attrs = load_coords(path)
    np.testing.assert_array_equal(coords, expected)
    assert attrs["patch_size"] == 256 and attrs["patch_size_level0"] == 256
    assert attrs["target_mpp"] == 0.5 and attrs["level0_mpp"] == pytest.approx(MPP)
    with h5py.File(path) as h5:
        assert h5["coords"].dtype == np.int64 and h5["tissue_fraction"].shape == (len(expected),)


def test_pyramid_reads_coarser_level_at_exact_scale(cmu_pyramid: Path, cmu_pixels: np.ndarray):
    from PIL import Image

    with open_slide(cmu_pyramid) as slide:
        exact = plan_tiles(slide, TilingConfig(mpp=1.0, tile_size=256))
        assert (exact.read_level, exact.read_size, exact.patch_size_level0) == (1, 256, 512)
        resized = plan_tiles(slide, TilingConfig(mpp=1.5, tile_size=128))
        assert resized.read_level == 1 and resized.read_size == round(128 * 1.5 / slide.level_mpp(1))
        tile = read_tile(slide, exact, 512, 512)
    # independent: level-0 pixels box-averaged 2x2 (how the pyramid was built), JPEG-compressed twice
    ref = np.asarray(Image.fromarray(cmu_pixels[512:1024, 512:1024]).resize((256, 256), Image.Resampling.BOX))
    assert np.abs(tile.astype(float) - ref).mean() < 4.0


@dataclass
class GeometrySlide:
    """A stand-in with a slide's geometry only (plan_tiles reads nothing)."""

    dimensions: tuple[int, int]
    mpp: float
    levels: list[Level]

    def level_mpp(self, level: int) -> float:
        return self.mpp * self.levels[level].downsample

    def best_level_for_mpp(self, mpp: float, tolerance: float = 0.02) -> int:
        return max(
            lv.index
            for lv in self.levels
            if self.level_mpp(lv.index) <= mpp * (1 + tolerance) or lv.index == 0
        )


@settings(max_examples=40, deadline=None)
@given(
    width=st.integers(64, 5000),
    height=st.integers(64, 5000),
    slide_mpp=st.floats(0.2, 1.0),
    target=st.floats(0.2, 4.0),
    tile=st.integers(16, 512),
    overlap_frac=st.floats(0.0, 0.9),
)
def test_grid_properties(width, height, slide_mpp, target, tile, overlap_frac):
    overlap = int(tile * overlap_frac)
    slide = GeometrySlide(
        (width, height), slide_mpp, [Level(0, (width, height), 1.0), Level(1, (width // 4, height // 4), 4.0)]
    )
    grid = plan_tiles(slide, TilingConfig(mpp=target, tile_size=tile, overlap=overlap))
    level_ds = 4.0 if 4 * slide_mpp <= target * 1.02 else 1.0
    scale = level_ds if abs(target / (level_ds * slide_mpp) - 1) <= 0.02 else target / slide_mpp
    patch0, stride0 = max(1, round(tile * scale)), max(1, round((tile - overlap) * scale))
    assert grid.patch_size_level0 == patch0
    expected = [
        (x, y) for y in range(0, height - patch0 + 1, stride0) for x in range(0, width - patch0 + 1, stride0)
    ]
    assert grid.coords.tolist() == [list(xy) for xy in expected]
    ideal = tile * target / slide_mpp  # the tile's side in level-0 px at exactly the asked scale
    assert abs(patch0 - ideal) <= 0.021 * ideal + 0.5


@pytest.mark.parametrize(
    "kwargs", [{"mpp": 0}, {"tile_size": 4}, {"overlap": 256}, {"min_tissue": 1.5}, {"mpp_tolerance": 0.7}]
)
def test_bad_tiling_options_are_config_errors(kwargs):
    with pytest.raises(ConfigError):
        TilingConfig(**kwargs)


def test_worker_processes_return_the_same_tiles(cmu_pyramid: Path):
    from scibind_pathology.extract import iter_tile_batches

    with open_slide(cmu_pyramid) as slide:
        grid = plan_tiles(slide, TilingConfig(mpp=0.5, tile_size=256), segment_tissue(slide))
        grid.coords, grid.tissue = grid.coords[:24], grid.tissue[:24]
        batches = iter_tile_batches(cmu_pyramid, grid, batch_size=8, slide=slide)
        serial = np.concatenate([t for _, t in batches])
    parallel = np.concatenate([t for _, t in iter_tile_batches(cmu_pyramid, grid, batch_size=8, workers=2)])
    assert serial.shape == (24, 256, 256, 3)
    np.testing.assert_array_equal(parallel, serial)


def list_of_copies(batches) -> list[np.ndarray]:
    """Copy each zero-copy batch before asking for the next; each tile sits 16 bytes off 32-byte alignment."""
    out = []
    for _, tiles in batches:
        assert {tiles[i].ctypes.data % 32 for i in range(len(tiles))} == {16}
        out.append(tiles.copy())
    return out


def test_tile_batches_sit_off_32_byte_alignment():
    from scibind_pathology.extract import tile_batch

    for n in (1, 3, 64):
        batch = tile_batch(n, 256)
        assert batch.shape == (n, 256, 256, 3) and batch.flags.c_contiguous
        assert {batch[i].ctypes.data % 32 for i in range(n)} == {16}  # libjpeg-turbo's faster alignment


def test_shared_memory_batches_are_reused_safely(cmu_pyramid: Path):
    """Zero-copy batches from a started pool: right tiles with more batches than ring slots, early stops."""
    from scibind_pathology.extract import iter_tile_batches, tile_pool

    with open_slide(cmu_pyramid) as slide:
        grid = plan_tiles(slide, TilingConfig(mpp=1.0, tile_size=64), segment_tissue(slide))
        serial = np.concatenate(
            [t for _, t in iter_tile_batches(cmu_pyramid, grid, batch_size=3, slide=slide)]
        )
    assert len(grid) > 3 * 12  # many more batches than the ring's 9 slots
    with tile_pool(cmu_pyramid, 2) as pool:
        for _ in range(2):  # the second pass reuses the pool's ring
            views = list_of_copies(
                iter_tile_batches(cmu_pyramid, grid, batch_size=3, workers=2, executor=pool, copy=False)
            )
            np.testing.assert_array_equal(np.concatenate(views), serial)
            assert pool.ring is not None and not pool.ring.busy
        ring = pool.ring
        stopped = iter_tile_batches(cmu_pyramid, grid, batch_size=3, workers=2, executor=pool, copy=False)
        first = next(stopped)[1].copy()
        stopped.close()  # abandoned early: in-flight chunks finish, the ring is free again
        assert pool.ring is ring and not ring.busy
        np.testing.assert_array_equal(first, serial[:3])
        held = list(iter_tile_batches(cmu_pyramid, grid, batch_size=3, workers=2, executor=pool))
        np.testing.assert_array_equal(np.concatenate([t for _, t in held]), serial)  # copies stay valid
    assert pool.ring is None  # freed with the pool
