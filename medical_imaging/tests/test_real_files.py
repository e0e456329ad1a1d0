"""Reading the real sample files; geometry checked against pydicom and nibabel read independently."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import torch
from scibind.errors import ReadError
from scibind_medical_imaging.dicom import read_dicom
from scibind_medical_imaging.nifti import read_nifti
from scibind_medical_imaging.readers import RadiographReader, VolumeReader


def test_ct_slice_applies_rescale_and_spacing(medical_dir: Path):
    path = medical_dir / "volumes" / "CT_small.dcm"
    ds = pydicom.dcmread(path)
    volume = read_dicom(path)
    expected = ds.pixel_array.astype(np.float32) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    np.testing.assert_array_equal(volume.array[:, :, 0], expected.T)
    row_mm, col_mm = (float(v) for v in ds.PixelSpacing)
    assert volume.spacing_mm == pytest.approx((col_mm, row_mm, float(ds.SliceThickness)))
    assert volume.modality == "CT" and volume.orientation == "LPS"
    # LPS -> RAS: the first voxel's world position is the header's position with x and y negated.
    lps = np.array([float(v) for v in ds.ImagePositionPatient])
    np.testing.assert_allclose(volume.affine[:3, 3], lps * [-1, -1, 1])
    assert volume.array.min() < -800  # air in HU, only after the -1024 intercept


def test_enhanced_ct_frames_sorted_by_position(medical_dir: Path):
    path = medical_dir / "volumes" / "eCT_Supplemental.dcm"
    ds = pydicom.dcmread(path)
    volume = read_dicom(path)
    assert volume.array.shape == (512, 512, 2)
    z = [
        float(f.PlanePositionSequence[0].ImagePositionPatient[2]) for f in ds.PerFrameFunctionalGroupsSequence
    ]
    normal = np.cross(
        *np.split(
            np.array(
                [
                    float(v)
                    for v in ds.SharedFunctionalGroupsSequence[0]
                    .PlaneOrientationSequence[0]
                    .ImageOrientationPatient
                ]
            ),
            2,
        )
    )
    order = np.argsort(np.array(z) * normal[2])
    np.testing.assert_array_equal(volume.array[:, :, 0], ds.pixel_array[order[0]].T.astype(np.float32) - 1024)
    assert volume.spacing_mm == pytest.approx((0.388672, 0.388672, 10.0))
    assert volume.orientation == "RPI"


def test_enhanced_mr_without_geometry_needs_an_explicit_spacing(medical_dir: Path):
    path = medical_dir / "volumes" / "emri_small.dcm"
    with pytest.raises(ReadError, match=r"emri_small\.dcm.*assume_spacing_mm"):
        read_dicom(path)
    volume = read_dicom(path, assume_spacing_mm=(1.0, 1.0, 1.2))
    assert volume.array.shape == (64, 64, 10) and volume.meta["geometry_assumed"] is True
    assert volume.modality == "MR"


@pytest.mark.parametrize("name", ["anatomical.nii", "avg152T1_LR_nifti.nii.gz"])
def test_nifti_matches_nibabel(medical_dir: Path, name: str):
    path = medical_dir / "volumes" / name
    image = nib.load(path)
    volume = read_nifti(path)
    np.testing.assert_array_equal(volume.array, np.asarray(image.get_fdata(), dtype=np.float32))
    np.testing.assert_allclose(volume.affine, image.affine)
    assert volume.spacing_mm == pytest.approx(tuple(float(z) for z in image.header.get_zooms()[:3]))


def test_4d_nifti_needs_a_volume_index(medical_dir: Path):
    path = medical_dir / "volumes" / "example4d.nii.gz"
    with pytest.raises(ReadError, match="volume_index"):
        read_nifti(path)
    volume = read_nifti(path, volume_index=1)
    np.testing.assert_array_equal(volume.array, np.asarray(nib.load(path).dataobj[..., 1], dtype=np.float32))
    assert volume.spacing_mm == pytest.approx((2.0, 2.0, 2.2), abs=1e-5)


def test_reader_reorients_to_ras(medical_dir: Path):
    path = medical_dir / "volumes" / "anatomical.nii"
    raw = read_nifti(path)
    assert raw.orientation == "LAS"
    sample = VolumeReader(orientation="RAS").read(str(path), record_id="anat")
    assert sample.meta["orientation"] == "RAS" and sample.meta["original_orientation"] == "LAS"
    # RAS flips the first axis of an LAS image.
    np.testing.assert_array_equal(sample.data[0].numpy(), raw.array[::-1])
    assert sample.meta["spacing_mm"] == [2.0, 2.0, 2.0]


def test_reader_resamples_to_target_spacing(medical_dir: Path):
    path = medical_dir / "volumes" / "avg152T1_LR_nifti.nii.gz"
    sample = VolumeReader(spacing_mm=[4.0, 4.0, 4.0], normalize="minmax").read(str(path), record_id="t1")
    assert sample.meta["spacing_mm"] == pytest.approx([4.0, 4.0, 4.0])
    assert tuple(sample.data.shape[1:]) == pytest.approx((46, 55, 46), abs=1)
    assert float(sample.data.min()) == 0.0 and float(sample.data.max()) == pytest.approx(1.0)


def test_dicom_radiograph_and_png(medical_dir: Path):
    reader = RadiographReader(size=[64, 64])
    ct = reader.read(str(medical_dir / "volumes" / "CT_small.dcm"), record_id="ct")
    assert ct.data.shape == (1, 64, 64) and ct.meta["pixel_spacing_mm"] == pytest.approx(
        [1.3229, 1.3229], abs=1e-3
    )
    png = next((medical_dir / "cxr" / "png").glob("*.png"))
    sample = RadiographReader().read(str(png), record_id="cxr")
    from PIL import Image

    expected = np.asarray(Image.open(png), dtype=np.float32)
    assert tuple(sample.data.shape) == (1, *expected.shape)
    lo, hi = expected.min(), expected.max()
    torch.testing.assert_close(sample.data[0], torch.from_numpy((expected - lo) / (hi - lo)))


def test_multi_frame_is_not_a_radiograph(medical_dir: Path):
    with pytest.raises(ReadError, match=r"eCT_Supplemental\.dcm.*volume"):
        RadiographReader().read(str(medical_dir / "volumes" / "eCT_Supplemental.dcm"), record_id="x")


def test_monochrome1_radiograph_is_inverted_and_oriented(tmp_path: Path):
    from scibind_medical_imaging.writers import write_dicom_series

    image = np.arange(12, dtype=np.float32).reshape(4, 3) * 10  # [I=4 columns, J=3 rows]
    affine = np.diag([-0.2, -0.3, 1.0, 1.0])  # LPS: i -> patient's left, j -> posterior (0.2 x 0.3 mm)
    write_dicom_series(image[..., None], affine, tmp_path / "m2")
    write_dicom_series(
        image[..., None], affine, tmp_path / "m1", header={"PhotometricInterpretation": "MONOCHROME1"}
    )
    reader = RadiographReader(normalize=None)
    plain = reader.read(str(next((tmp_path / "m2").glob("*.dcm"))), record_id="a")
    inverted = reader.read(str(next((tmp_path / "m1").glob("*.dcm"))), record_id="b")
    np.testing.assert_array_equal(plain.data[0].numpy(), image.T)  # rows x columns, as displayed
    np.testing.assert_array_equal(inverted.data[0].numpy(), image.T.max() - image.T)
    assert plain.meta["pixel_spacing_mm"] == pytest.approx([0.3, 0.2])


def test_chest_xrays_pair_with_their_clinical_table(medical_dir: Path, tmp_path: Path):
    import pandas as pd
    from scibind.data.dataset import PairedDataset, ViewConfig
    from scibind.data.manifest import read_manifest
    from scibind_medical_imaging.clinical import render_record
    from scibind_medical_imaging.encoders import tiny_resnet_2d

    cxr = medical_dir / "cxr"
    table = pd.read_csv(cxr / "data.csv", dtype={"image_id": str, "patient_id": str})
    table = table[table["image_id"].map(lambda i: (cxr / "png" / f"{i}.png").is_file())]
    assert len(table) == 10
    columns = ["sex", "projection", "crp_val", "ldh_val", "po2_val"]
    names = {"crp_val": "CRP", "ldh_val": "LDH", "po2_val": "pO2"}
    manifest = pd.DataFrame(
        {
            "id": table["image_id"],
            "xray": [str(cxr / "png" / f"{i}.png") for i in table["image_id"]],
            "record": [render_record(r, columns, names) for _, r in table.iterrows()],
            "group": table["patient_id"],
        }
    )
    manifest.to_csv(tmp_path / "cxr.csv", index=False)
    first = manifest.iloc[0]
    assert first["record"].startswith("sex: f; projection: pa; CRP: 3")
    dataset = PairedDataset(
        read_manifest(tmp_path / "cxr.csv"),
        {"xray": ViewConfig("xray", "medical_image", RadiographReader(size=[64, 64])), "record": "text"},
    )
    batch = dataset.collate([dataset[i] for i in range(len(dataset))])
    images = batch.views["xray"].data
    assert tuple(images.shape) == (10, 1, 64, 64) and float(images.min()) >= 0 and float(images.max()) <= 1
    assert len(set(batch.targets["group"].tolist())) == 7  # 10 images of 7 patients
    with torch.no_grad():
        assert tiny_resnet_2d().eval()(images).shape == (10, 64)
