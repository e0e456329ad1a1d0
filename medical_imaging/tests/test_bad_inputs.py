"""Bad input gives errors naming the file; ``scibind prepare`` quarantines it and the rest continue."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from scibind.errors import ReadError
from scibind_medical_imaging.readers import VolumeReader
from scibind_medical_imaging.writers import write_dicom_series, write_nifti

from .conftest import LAS_AFFINE, ramp_volume


def _series(folder: Path, seed: int = 0) -> list[Path]:
    return write_dicom_series(ramp_volume(), LAS_AFFINE, folder, seed=seed)


def _sr_document(path: Path) -> Path:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.88.11"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "SR"
    ds.SeriesInstanceUID = generate_uid()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def test_series_sorted_by_position_not_file_name(tmp_path: Path):
    files = _series(tmp_path / "s")
    assert [f.name for f in files] != sorted(f.name for f in files)  # names are shuffled on purpose
    sample = VolumeReader(orientation=None).read(str(tmp_path / "s"), record_id="r")
    # Slices follow the DICOM normal (row x column cosines), here -z: every voxel must still sit at the
    # world position it was written at.
    affine = np.array(sample.meta["affine"])
    index = np.stack(np.meshgrid(*(np.arange(s) for s in (10, 12, 8)), indexing="ij"), -1).reshape(-1, 3)
    world = index @ affine[:3, :3].T + affine[:3, 3]
    source = np.rint((world - LAS_AFFINE[:3, 3]) @ np.linalg.inv(LAS_AFFINE[:3, :3]).T).astype(int)
    expected = ramp_volume()[tuple(source.T)].reshape(10, 12, 8)
    np.testing.assert_array_equal(sample.data[0].numpy(), expected)
    assert sample.meta["orientation"] == "LAI"
    ras = VolumeReader(orientation="RAS").read(str(tmp_path / "s"), record_id="r")
    np.testing.assert_array_equal(ras.data[0].numpy(), ramp_volume()[::-1])


def test_truncated_dicom_is_named(tmp_path: Path):
    files = _series(tmp_path / "s")
    files[3].write_bytes(files[3].read_bytes()[:-200])
    with pytest.raises(ReadError, match=files[3].name):
        VolumeReader().read(str(tmp_path / "s"), record_id="r")


def test_missing_pixel_data_is_named(tmp_path: Path):
    files = _series(tmp_path / "s")
    ds = pydicom.dcmread(files[2])
    del ds.PixelData
    ds.save_as(files[2])
    with pytest.raises(ReadError, match=f"{files[2].name}.*no pixel data"):
        VolumeReader().read(str(tmp_path / "s"), record_id="r")


def test_sr_document_alone_is_an_error_and_in_a_folder_is_skipped(tmp_path: Path):
    sr = _sr_document(tmp_path / "report.dcm")
    with pytest.raises(ReadError, match=r"report\.dcm.*Structured Report"):
        VolumeReader().read(str(sr), record_id="r")
    _series(tmp_path / "s")
    _sr_document(tmp_path / "s" / "zz_report.dcm")
    sample = VolumeReader().read(str(tmp_path / "s"), record_id="r")
    assert sample.meta["skipped_non_image"] == 1 and sample.data.shape[1:] == (10, 12, 8)


def test_mixed_series_are_refused(tmp_path: Path):
    _series(tmp_path / "a", seed=1)
    _series(tmp_path / "b", seed=2)
    for file in (tmp_path / "b").iterdir():
        shutil.move(file, tmp_path / "a" / f"b_{file.name}")
    with pytest.raises(ReadError, match="2 different series"):
        VolumeReader().read(str(tmp_path / "a"), record_id="r")


def test_missing_slice_is_detected(tmp_path: Path):
    files = _series(tmp_path / "s")
    middle = sorted(files, key=lambda f: float(pydicom.dcmread(f).ImagePositionPatient[2]))[4]
    middle.unlink()
    with pytest.raises(ReadError, match="inconsistent slice spacing"):
        VolumeReader().read(str(tmp_path / "s"), record_id="r")


def test_corrupt_nifti_header_is_named(tmp_path: Path):
    path = write_nifti(ramp_volume(), LAS_AFFINE, tmp_path / "bad.nii")
    data = bytearray(path.read_bytes())
    data[70:72] = (999).to_bytes(2, "little")  # an unknown datatype code
    path.write_bytes(bytes(data))
    with pytest.raises(ReadError, match=r"bad\.nii"):
        VolumeReader().read(str(path), record_id="r")


def test_prepare_quarantines_bad_items_and_continues(tmp_path: Path):
    from scibind.prepare import run_prepare

    data = tmp_path / "data"
    write_nifti(ramp_volume(), LAS_AFFINE, data / "good.nii.gz")
    _series(data / "series")
    _sr_document(data / "series" / "zz_report.dcm")  # skipped inside an image folder
    bad = write_nifti(ramp_volume(), LAS_AFFINE, data / "broken.nii")
    bad.write_bytes(bad.read_bytes()[:100])
    truncated = _series(data / "truncated", seed=3)[0]
    truncated.write_bytes(truncated.read_bytes()[:300])
    _sr_document(data / "reports" / "lonely_report.dcm")
    summary = run_prepare([str(data)], tmp_path / "out")
    assert (summary.prepared, summary.quarantined) == (2, 3)
    lines = [json.loads(x) for x in (tmp_path / "out" / "quarantine.jsonl").read_text().splitlines()]
    reasons = {Path(x["path"]).name: x["reason"] for x in lines}
    assert set(reasons) == {"broken.nii", "truncated", "reports"}
    assert "broken.nii" in reasons["broken.nii"] and truncated.name in reasons["truncated"]
    assert "no DICOM image" in reasons["reports"]
    volumes = sorted((tmp_path / "out" / "cache").rglob("volume.npy"))
    assert len(volumes) == 2 and all(np.load(v, allow_pickle=False).shape[0] == 1 for v in volumes)


def test_truncated_file_without_suffix_is_not_silently_skipped(tmp_path: Path):
    files = _series(tmp_path / "s")
    for file in files:
        file.rename(file.with_suffix(""))  # PACS exports often have no suffix
    (tmp_path / "s" / "README").write_text("export notes", encoding="utf-8")
    sample = VolumeReader().read(str(tmp_path / "s"), record_id="r")
    assert sample.meta["ignored_files"] == 1
    damaged = files[5].with_suffix("")
    damaged.write_bytes(damaged.read_bytes()[:400])
    with pytest.raises(ReadError, match=damaged.name):
        VolumeReader().read(str(tmp_path / "s"), record_id="r")
