"""Shared helpers of the medical imaging tests: small synthetic volumes written as real files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

MEDICAL = "medical"


@pytest.fixture
def medical_dir(shared_data_dir: Path) -> Path:
    """The shared folder of real medical sample files."""
    path = shared_data_dir / MEDICAL
    if not path.is_dir():
        pytest.skip(f"{path} is missing")
    return path


def ramp_volume(shape: tuple[int, int, int] = (10, 12, 8)) -> np.ndarray:
    """A volume whose every voxel differs (i * 100 + j * 10 + k), so any axis mix-up shows."""
    i, j, k = np.meshgrid(*(np.arange(s) for s in shape), indexing="ij")
    return (i * 100 + j * 10 + k).astype(np.float32) - 500.0


LAS_AFFINE = np.array([[-1.5, 0, 0, 10.0], [0, 1.5, 0, -20.0], [0, 0, 2.5, -30.0], [0, 0, 0, 1.0]])
