"""Property tests of the DICOM geometry parser: any orientation, spacing and file order round-trips."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from scibind_medical_imaging.dicom import dicom_files, read_dicom_series
from scibind_medical_imaging.writers import write_dicom_series

from .conftest import ramp_volume

angles = st.floats(-np.pi, np.pi, allow_nan=False)
spacing = st.floats(0.3, 4.0, allow_nan=False)
origin = st.floats(-300, 300, allow_nan=False)


def _rotation(a: float, b: float, c: float) -> np.ndarray:
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    rz = np.array([[np.cos(c), -np.sin(c), 0], [np.sin(c), np.cos(c), 0], [0, 0, 1]])
    return rz @ ry @ rx


@settings(max_examples=15, deadline=None)
@given(angles, angles, angles, spacing, spacing, spacing, origin, origin, origin, st.integers(0, 10**6))
def test_series_geometry_round_trips(a, b, c, sx, sy, sz, ox, oy, oz, seed):
    affine = np.eye(4)
    affine[:3, :3] = _rotation(a, b, c) * [sx, sy, sz]
    affine[:3, 3] = [ox, oy, oz]
    values = ramp_volume((5, 4, 6))
    with tempfile.TemporaryDirectory() as tmp:
        write_dicom_series(values, affine, Path(tmp), seed=seed)  # file names shuffled by seed
        volume = read_dicom_series(dicom_files(Path(tmp)), where=Path(tmp))
    # Slices are ordered along the row x column normal; when that points against k, k is reversed.
    flipped = np.dot(np.cross(affine[:3, 0], affine[:3, 1]), affine[:3, 2]) < 0
    expected_affine = affine.copy()
    if flipped:
        expected_affine[:3, 3] += affine[:3, 2] * 5
        expected_affine[:3, 2] *= -1
    np.testing.assert_allclose(volume.affine, expected_affine, atol=1e-4)
    np.testing.assert_array_equal(volume.array, values[:, :, ::-1] if flipped else values)
    np.testing.assert_allclose(volume.spacing_mm, [sx, sy, sz], atol=1e-4)
