"""Writing volumes as real DICOM series and NIfTI files (synthetic data, tests, benchmarks).

The DICOM writer stores each slice as one CT Image Storage file with full geometry (Image Position /
Orientation (Patient), Pixel Spacing) derived from a RAS affine, unsigned 16-bit pixels with Rescale
Intercept -1024 (so stored values are HU + 1024), and any header values the caller passes, e.g. planted
identifiers for PHI tests. Files are named in a shuffled order so readers must sort by position.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from scibind_medical_imaging.volume import LPS_TO_RAS

__all__ = ["CT_IMAGE_STORAGE", "write_dicom_series", "write_nifti"]

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
_RESCALE_INTERCEPT = -1024.0


def write_nifti(array: np.ndarray, affine: np.ndarray, path: str | Path, *, dtype: str = "int16") -> Path:
    """Write ``array`` ``[I, J, K]`` (HU) with its RAS ``affine`` as NIfTI-1 (``.nii`` or ``.nii.gz``)."""
    import nibabel as nib

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = np.rint(array).astype(dtype) if np.dtype(dtype).kind in "iu" else array.astype(dtype)
    image = nib.Nifti1Image(data, np.asarray(affine, dtype=np.float64))
    image.header.set_xyzt_units("mm", "sec")
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    nib.save(image, path)
    return path


def write_dicom_series(
    array: np.ndarray,
    affine: np.ndarray,
    folder: str | Path,
    *,
    header: Mapping[str, Any] | None = None,
    seed: int = 0,
    modality: str = "CT",
) -> list[Path]:
    """Write ``array`` ``[I, J, K]`` (HU) as one DICOM file per ``k`` slice into ``folder``.

    Args:
        array: Voxel values (HU for CT).
        affine: Voxel -> RAS mm affine (as for NIfTI).
        folder: Output folder (created).
        header: Extra DICOM attributes by keyword (``PatientName``, ``SeriesInstanceUID``, ...); UIDs that
            are not given are generated from ``seed``.
        seed: Seeds generated UIDs and the file-name shuffle.
        modality: DICOM Modality.

    Returns:
        The written files, in slice order.
    """
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    header = dict(header or {})
    lps = LPS_TO_RAS @ np.asarray(affine, dtype=np.float64)
    col_mm = float(np.linalg.norm(lps[:3, 0]))
    row_mm = float(np.linalg.norm(lps[:3, 1]))
    row_cos, col_cos = lps[:3, 0] / col_mm, lps[:3, 1] / row_mm
    study = header.pop("StudyInstanceUID", generate_uid(entropy_srcs=[f"study-{seed}"]))
    series = header.pop("SeriesInstanceUID", generate_uid(entropy_srcs=[f"series-{seed}"]))
    frame_ref = generate_uid(entropy_srcs=[f"frame-{seed}"])
    stored = np.clip(np.rint(array - _RESCALE_INTERCEPT), 0, 65535).astype(np.uint16)
    names = rng.permutation(array.shape[2])
    paths = []
    for k in range(array.shape[2]):
        sop = generate_uid(entropy_srcs=[f"sop-{seed}-{k}"])
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CT_IMAGE_STORAGE
        meta.MediaStorageSOPInstanceUID = sop
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID = CT_IMAGE_STORAGE
        ds.SOPInstanceUID = sop
        ds.StudyInstanceUID = study
        ds.SeriesInstanceUID = series
        ds.FrameOfReferenceUID = frame_ref
        ds.Modality = modality
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient = [float(v) for v in (lps @ np.array([0.0, 0.0, k, 1.0]))[:3]]
        ds.ImageOrientationPatient = [float(v) for v in (*row_cos, *col_cos)]
        ds.PixelSpacing = [row_mm, col_mm]
        ds.SliceThickness = float(np.linalg.norm(lps[:3, 2]))
        ds.Rows, ds.Columns = int(array.shape[1]), int(array.shape[0])
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
        ds.PixelRepresentation = 0
        ds.RescaleIntercept = _RESCALE_INTERCEPT
        ds.RescaleSlope = 1.0
        for keyword, value in header.items():
            setattr(ds, keyword, value)
        ds.PixelData = np.ascontiguousarray(stored[:, :, k].T).tobytes()
        path = folder / f"IM{int(names[k]):04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths
