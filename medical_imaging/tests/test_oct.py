"""OCT: DICOM Ophthalmic Tomography read with its voxel size, the synthetic cubes and the 3D <-> 2D recipe."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pydicom
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scibind.errors import ReadError
from scibind_medical_imaging.ophthalmic import OPT_STORAGE, write_oct_dicom
from scibind_medical_imaging.readers import VolumeReader

from .conftest import ramp_volume


def _read(path: Path, **options) -> object:
    return VolumeReader(orientation=None, cache_ram_mb=0, **options).read(str(path), record_id="r1")


def _pydicom_spacing(path: Path) -> tuple[float, float, float]:
    """``(lateral, axial, slow)`` mm straight from the header, wherever the writer put it."""
    ds = pydicom.dcmread(path)
    item = ds
    if "PixelSpacing" not in ds:
        shared = ds.SharedFunctionalGroupsSequence[0]
        item = shared.PixelMeasuresSequence[0] if "PixelMeasuresSequence" in shared else None
        if item is None:
            item = ds.PerFrameFunctionalGroupsSequence[0].PixelMeasuresSequence[0]
    return float(item.PixelSpacing[1]), float(item.PixelSpacing[0]), float(item.SliceThickness)


def _pydicom_volume(path: Path) -> np.ndarray:
    """``(i, j, k)`` from pydicom: frames sorted by InStackPositionNumber, ``[k, rows, cols]`` transposed."""
    ds = pydicom.dcmread(path)
    order = [
        int(f.FrameContentSequence[0].InStackPositionNumber) for f in ds.PerFrameFunctionalGroupsSequence
    ]
    return ds.pixel_array[np.argsort(order)].transpose(2, 1, 0)


@pytest.mark.parametrize("spacing_in", ["shared-groups", "per-frame", "top-level"])
def test_opt_file_is_read_with_its_spacing_and_frame_order(tmp_path: Path, spacing_in: str):
    cube = np.clip(ramp_volume((10, 12, 8)) / 4 + 130, 0, 255)  # every voxel differs
    path = write_oct_dicom(
        cube, (0.0117, 0.0039, 0.121), tmp_path / "oct.dcm", spacing_in=spacing_in, shuffle_frames=True
    )
    ds = pydicom.dcmread(path)
    assert ds.SOPClassUID == OPT_STORAGE and int(ds.NumberOfFrames) == 8
    stored = [
        int(f.FrameContentSequence[0].InStackPositionNumber) for f in ds.PerFrameFunctionalGroupsSequence
    ]
    assert stored != sorted(stored)  # frames really are stored shuffled
    sample = _read(path)
    assert tuple(sample.data.shape) == (1, 10, 12, 8)
    assert sample.meta["spacing_mm"] == pytest.approx(list(_pydicom_spacing(path)))
    assert sample.meta["spacing_mm"] == pytest.approx([0.0117, 0.0039, 0.121])
    assert sample.meta["orientation_assumed"] and sample.meta["imaging_modality"] == "OPT"
    np.testing.assert_array_equal(sample.data[0].numpy(), _pydicom_volume(path))
    np.testing.assert_array_equal(sample.data[0].numpy(), np.rint(cube))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    spacing=st.tuples(*(st.integers(1, 5000).map(lambda v: v / 10000) for _ in range(3))),
    shape=st.tuples(st.integers(1, 6), st.integers(1, 6), st.integers(1, 5)),
    spacing_in=st.sampled_from(["shared-groups", "per-frame", "top-level"]),
    seed=st.integers(0, 1000),
)
def test_opt_round_trip_any_spacing_and_shape(tmp_path: Path, spacing, shape, spacing_in, seed):
    cube = np.random.default_rng(seed).integers(0, 256, size=shape)
    path = write_oct_dicom(
        cube, spacing, tmp_path / f"{seed}.dcm", spacing_in=spacing_in, shuffle_frames=True
    )
    sample = _read(path)
    assert sample.meta["spacing_mm"] == pytest.approx(list(spacing), rel=1e-6)
    assert sample.meta["spacing_mm"] == pytest.approx(list(_pydicom_spacing(path)), rel=1e-6)
    np.testing.assert_array_equal(sample.data[0].numpy(), cube)


def test_opt_without_spacing_or_with_repeated_positions_is_a_clear_error(tmp_path: Path):
    cube = np.full((4, 5, 3), 100.0)
    path = write_oct_dicom(cube, (0.1, 0.05, 0.2), tmp_path / "nospacing.dcm", spacing_in="top-level")
    ds = pydicom.dcmread(path)
    del ds.PixelSpacing
    ds.save_as(path)
    with pytest.raises(ReadError, match="voxel size") as info:
        _read(path)
    assert "nospacing.dcm" in str(info.value)
    sample = _read(path, assume_spacing_mm=[0.5, 0.25, 1.0])  # the documented way out
    assert sample.meta["spacing_mm"] == pytest.approx([0.5, 0.25, 1.0])
    path = write_oct_dicom(cube, (0.1, 0.05, 0.2), tmp_path / "repeated.dcm")
    ds = pydicom.dcmread(path)
    ds.PerFrameFunctionalGroupsSequence[1].FrameContentSequence[0].InStackPositionNumber = 1
    ds.save_as(path)
    with pytest.raises(ReadError, match="InStackPositionNumber"):
        _read(path)


def test_synthetic_cubes_agree_across_formats_and_with_their_enface_images(tmp_path: Path):
    import pandas as pd
    import scibind
    from PIL import Image
    from scibind_medical_imaging.synthetic_oct import OCT_SPACING_MM

    manifest = scibind.create_dataset("medical_imaging/synthetic-oct", tmp_path / "a", n=24, seed=2)
    again = scibind.create_dataset("medical_imaging/synthetic-oct", tmp_path / "b", n=24, seed=2)
    assert manifest.read_bytes() == again.read_bytes()
    frame = pd.read_csv(manifest)
    assert set(frame["format"]) == {"dicom", "nifti"}
    reader = VolumeReader(orientation=None, cache_ram_mb=0)
    affines = set()
    for row in frame.itertuples():
        sample = reader.read(row.oct, record_id=row.id, base_dir=manifest.parent)
        assert sample.meta["spacing_mm"] == pytest.approx(list(OCT_SPACING_MM))
        affines.add(json.dumps(sample.meta["affine"]))
        cube = sample.data[0].numpy()
        # The retina's brightest band (RPE) lies deeper than the nerve fibre layer in every cube: j is depth.
        profile = cube.mean(axis=(0, 2))
        assert 15 < int(np.argmax(profile)) < 28
        image = np.asarray(Image.open(manifest.parent / row.enface), dtype=np.float64)
        # The lesion is where the manifest says, in the en-face image (rows: slow axis, columns: lateral).
        r = round(row.lesion_y_mm / OCT_SPACING_MM[2] + 15.5)
        c = round(row.lesion_x_mm / OCT_SPACING_MM[0] + 15.5)
        centre = image[max(r - 1, 0) : r + 2, max(c - 1, 0) : c + 2].mean()
        if row.lesion == "atrophy":
            assert centre > np.median(image) + 20
        elif row.lesion == "fluid":
            assert centre < np.median(image) - 5
    assert len(affines) == 1  # DICOM OPT and NIfTI cubes share one layout


def test_oct_recipe_retrieves_across_3d_and_2d_and_leaks_no_identifier(tmp_path: Path):
    from scibind.train import load_recipe, train

    recipe = load_recipe(
        "medical_imaging/synthetic-oct-enface",
        [
            "train.max_steps=40",
            "train.checkpoint_every=40",
            "data.dataset_kwargs.n=160",
            "train.warmup_steps=5",
        ],
    )
    train(recipe, tmp_path / "run")
    metrics = json.loads((tmp_path / "run" / "eval" / "metrics.json").read_text())
    assert metrics["oct->enface/R@5"] > 2 * metrics["oct->enface/R@5_chance"]
    assert metrics["enface->oct/R@5"] > 2 * metrics["enface->oct/R@5_chance"]
    for path in (tmp_path / "run").rglob("*"):
        if path.is_file() and path.relative_to(tmp_path / "run").parts[0] != "data":
            blob = path.read_bytes()
            assert b"SYNTHETIC^PATIENT" not in blob and b"SYNTHOCT" not in blob, path
