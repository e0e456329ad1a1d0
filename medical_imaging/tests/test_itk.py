"""MHA / NRRD volumes written by SimpleITK itself: voxels, spacing and orientation as ITK defines them."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from scibind.errors import MissingDependencyError, ReadError
from scibind_medical_imaging.readers import VolumeReader

from .conftest import ramp_volume

sitk = pytest.importorskip("SimpleITK")

SPACING = (0.7, 0.8, 2.5)
ORIGIN = (10.0, -20.0, 30.0)
# ITK direction (LPS world): columns are the world directions of x, y, z; here x -> R (-L), y -> S, z -> P.
DIRECTION = np.array([[-1.0, 0, 0], [0, 0, 1.0], [0, 1.0, 0]])


def write(array_ijk: np.ndarray, path: Path, **kwargs: object) -> Path:
    image = sitk.GetImageFromArray(np.ascontiguousarray(array_ijk.T))  # ITK arrays are (z, y, x)
    image.SetMetaData("PatientName", "DOE^JANE^PLANTED")  # free-text header fields can hold identifiers
    image.SetSpacing(SPACING)
    image.SetOrigin(ORIGIN)
    image.SetDirection(DIRECTION.flatten().tolist())
    sitk.WriteImage(image, str(path), **kwargs)
    return path


@pytest.mark.parametrize("name", ["ct.mha", "ct.nrrd", "ct.mhd", "ct.nhdr"])
def test_voxels_and_geometry_match_itk(tmp_path: Path, name: str):
    ramp = ramp_volume()
    path = write(ramp, tmp_path / name)
    sample = VolumeReader(orientation=None, cache_ram_mb=0).read(path.name, record_id="r", base_dir=tmp_path)
    assert np.array_equal(sample.data[0].numpy(), ramp)
    meta = sample.meta
    assert meta["format"] == ("mha" if name.startswith("ct.mh") else "nrrd")
    assert meta["spacing_mm"] == pytest.approx(SPACING) and meta["shape"] == list(ramp.shape)
    assert meta["orientation"] == "RSP"  # x -> right, y -> superior, z -> posterior
    # Independently of the reader: ITK's own index -> physical (LPS) mapping, flipped to RAS.
    image = sitk.ReadImage(str(path))
    assert "PLANTED" in image.GetMetaData("PatientName") and "PLANTED" not in json.dumps(meta)
    affine = np.array(meta["affine"])
    for index in [(0, 0, 0), (3, 5, 7), (9, 11, 0)]:
        lps = np.array(image.TransformIndexToPhysicalPoint(index))
        ras = affine @ np.array([*index, 1.0])
        assert ras[:3] == pytest.approx(lps * np.array([-1, -1, 1]), abs=1e-6)


def test_reoriented_and_resampled_like_any_volume(tmp_path: Path):
    path = write(ramp_volume(), tmp_path / "ct.nrrd", useCompression=True)
    sample = VolumeReader(orientation="RAS", spacing_mm=[1.4, 1.6, 2.5]).read(str(path), record_id="r")
    assert sample.meta["orientation"] == "RAS" and sample.meta["spacing_mm"] == pytest.approx([1.4, 1.6, 2.5])
    assert sample.meta["original_orientation"] == "RSP"
    assert sample.meta["original_spacing_mm"] == pytest.approx(SPACING)


def test_detached_data_is_part_of_the_cache_key(tmp_path: Path):
    ramp = ramp_volume()
    header = write(ramp, tmp_path / "ct.mhd")
    reader = VolumeReader(orientation=None)
    assert reader.read(str(header), record_id="r").meta["cache"] == "miss"
    assert reader.read(str(header), record_id="r").meta["cache"] == "ram"
    write(ramp + 1, tmp_path / "ct.mhd")  # rewrites ct.raw
    again = reader.read(str(header), record_id="r")
    assert again.meta["cache"] == "miss" and np.array_equal(again.data[0].numpy(), ramp + 1)


def test_4d_needs_a_volume_index(tmp_path: Path):
    series = np.stack([ramp_volume((4, 5, 6)) + t for t in range(3)])  # (t, i, j, k)
    image = sitk.GetImageFromArray(np.ascontiguousarray(series.transpose(0, 3, 2, 1)), isVector=False)
    sitk.WriteImage(image, str(tmp_path / "4d.nrrd"))
    with pytest.raises(ReadError, match="volume_index"):
        VolumeReader(orientation=None).read(str(tmp_path / "4d.nrrd"), record_id="r")
    sample = VolumeReader(orientation=None, volume_index=2).read(str(tmp_path / "4d.nrrd"), record_id="r")
    assert np.array_equal(sample.data[0].numpy(), ramp_volume((4, 5, 6)) + 2)


def test_bad_files_name_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    path = write(ramp_volume(), tmp_path / "ct.mha")
    blob = path.read_bytes()
    (tmp_path / "cut.mha").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(ReadError, match=r"cut\.mha"):
        VolumeReader().read(str(tmp_path / "cut.mha"), record_id="r")
    rgb = sitk.GetImageFromArray(np.zeros((4, 5, 3), dtype=np.uint8), isVector=True)
    sitk.WriteImage(rgb, str(tmp_path / "rgb.mha"))
    with pytest.raises(ReadError, match="components"):
        VolumeReader().read(str(tmp_path / "rgb.mha"), record_id="r")
    (tmp_path / "orphan.mhd").write_text("NDims = 3\nElementDataFile = missing.raw\n", encoding="utf-8")
    with pytest.raises(ReadError, match=r"missing\.raw"):
        VolumeReader().read(str(tmp_path / "orphan.mhd"), record_id="r")
    monkeypatch.setitem(sys.modules, "SimpleITK", None)
    with pytest.raises(MissingDependencyError, match="SimpleITK"):
        VolumeReader(cache_ram_mb=0).read(str(path), record_id="r")
