"""Shared helpers of the Cell Painting tests: small fields written as real TIFF files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


def write_field(
    folder: Path,
    well: tuple[int, int] = (3, 3),
    site: int = 1,
    size: int = 24,
    seed: int = 0,
    tokens: tuple[int, ...] = (2, 3, 4, 5, 6),
    dtype: str = "uint16",
) -> dict[int, Path]:
    """Write one Harmony-named field (one TIFF per channel token) and return token -> path."""
    import tifffile

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for token in tokens:
        path = folder / f"r{well[0]:02d}c{well[1]:02d}f{site:02d}p01-ch{token}sk1fk1fl1.tiff"
        tifffile.imwrite(path, rng.integers(100, 4000, size=(size, size)).astype(dtype), metadata=None)
        paths[token] = path
    return paths


@pytest.fixture
def cellpainting_dir(shared_data_dir: Path) -> Path:
    """The real Cell Painting sample folder."""
    path = shared_data_dir / "cellpainting"
    if not path.is_dir():
        pytest.fail(f"{path} is missing from the shared data folder")
    return path


@pytest.fixture
def field_writer():
    """:func:`write_field`, for tests that write fields."""
    return write_field
