"""DICOM Ophthalmic Tomography (OCT, SOP class 1.2.840.10008.5.1.4.1.1.77.1.5.4): geometry and writing.

An OPT object is one multi-frame file: each frame is a B-scan whose rows run along the axial depth (A-scan
samples) and whose columns run across the retina (the fast scan axis); frames step along the slow axis.
Vendors rarely store patient-space positions (Plane Position / Orientation (Patient)) for OCT; the voxel
size comes from the Pixel Measures functional group (``PixelSpacing`` = [axial row spacing, lateral column
spacing], ``SliceThickness`` or ``SpacingBetweenSlices`` between B-scans), shared or per frame, or from
the same attributes at the top level. :func:`read_ophthalmic` orders frames by ``InStackPositionNumber``
(Frame Content) when present and builds an *ophthalmic* affine: ``i`` lateral (columns), ``j`` axial depth
(rows), ``k`` slow axis (frames), each scaled by its spacing in mm and marked ``orientation_assumed`` (the
axes are the scanner's, not the patient's). The result is the ``(i, j, k)`` layout of every other volume.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from scibind.errors import ReadError

from scibind_medical_imaging.volume import LPS_TO_RAS, Volume

__all__ = ["OPT_STORAGE", "is_ophthalmic", "ophthalmic_affine", "read_ophthalmic", "write_oct_dicom"]

OPT_STORAGE = "1.2.840.10008.5.1.4.1.1.77.1.5.4"
"""SOP Class UID of Ophthalmic Tomography Image Storage."""


def is_ophthalmic(dataset: Any) -> bool:
    """Whether ``dataset`` is an Ophthalmic Tomography image (SOP class, or Modality ``OPT``)."""
    return str(dataset.get("SOPClassUID", "")) == OPT_STORAGE or str(dataset.get("Modality", "")) == "OPT"


def ophthalmic_affine(col_mm: float, row_mm: float, slice_mm: float) -> np.ndarray:
    """The RAS affine of an ``(i lateral, j depth, k slow)`` OCT volume: scanner axes read as LPS x, y, z."""
    return LPS_TO_RAS @ np.diag([col_mm, row_mm, slice_mm, 1.0])


def _item(dataset: Any, groups: str, index: int, sequence: str) -> Any:
    items = dataset.get(groups)
    if items is None or len(items) <= index:
        return None
    found = items[index].get(sequence)
    return found[0] if found else None


def _measure(dataset: Any, frame: int, keyword: str) -> Any:
    """``keyword`` from Pixel Measures (per frame, then shared), then from the top level."""
    for groups, index in (("PerFrameFunctionalGroupsSequence", frame), ("SharedFunctionalGroupsSequence", 0)):
        measures = _item(dataset, groups, index, "PixelMeasuresSequence")
        if measures is not None and measures.get(keyword) is not None:
            return measures.get(keyword)
    return dataset.get(keyword)


def _spacing(dataset: Any, n_frames: int, where: Path, record_id: str) -> tuple[float, float, float]:
    """``(column mm, row mm, slice mm)``; every frame must agree."""
    found = set()
    for frame in range(n_frames):
        pixel = _measure(dataset, frame, "PixelSpacing")
        between = _measure(dataset, frame, "SpacingBetweenSlices")
        thickness = _measure(dataset, frame, "SliceThickness")
        step = between if between is not None else thickness
        try:
            row_mm, col_mm = (float(v) for v in pixel)
            slice_mm = float(step)
        except (TypeError, ValueError):
            raise ReadError(
                "the ophthalmic tomography header has no complete voxel size (PixelSpacing and "
                "SliceThickness or SpacingBetweenSlices, in Pixel Measures or at the top level); pass "
                "assume_spacing_mm=[lateral, axial, slow] to read it",
                path=where,
                record=record_id or None,
            ) from None
        found.add((round(col_mm, 6), round(row_mm, 6), round(slice_mm, 6)))
    if len(found) != 1 or min(next(iter(found))) <= 0:
        raise ReadError(
            f"the B-scans have {len(found)} different or non-positive voxel sizes; not one OCT volume",
            path=where,
            record=record_id or None,
        )
    return next(iter(found))


def _order(dataset: Any, n_frames: int, where: Path, record_id: str) -> np.ndarray:
    """Frame indices sorted by ``InStackPositionNumber`` (stored order when frames carry none)."""
    positions = []
    for frame in range(n_frames):
        content = _item(dataset, "PerFrameFunctionalGroupsSequence", frame, "FrameContentSequence")
        value = None if content is None else content.get("InStackPositionNumber")
        positions.append(None if value is None else int(value))
    if any(p is None for p in positions):
        return np.arange(n_frames)
    if len(set(positions)) != n_frames:
        raise ReadError(
            "B-scans repeat an InStackPositionNumber; the file holds several stacks or duplicates",
            path=where,
            record=record_id or None,
        )
    return np.argsort(np.array(positions), kind="stable")


def read_ophthalmic(
    dataset: Any, pixels: np.ndarray, *, where: Path, record_id: str = "", header: dict[str, Any]
) -> Volume:
    """An OPT dataset's frames ``[frames, rows, cols]`` -> a :class:`Volume` ``(i lateral, j depth, k slow)``.

    Args:
        dataset: The parsed OPT dataset.
        pixels: Its decoded pixel array (``[frames, rows, cols]``, or ``[rows, cols]`` for one B-scan).
        where: The file, for errors.
        record_id: For errors.
        header: The safe header attributes to put in the metadata.

    Raises:
        ReadError: No voxel size, voxel sizes that differ between frames, or repeated stack positions.
    """
    frames = pixels[None] if pixels.ndim == 2 else pixels
    col_mm, row_mm, slice_mm = _spacing(dataset, frames.shape[0], where, record_id)
    order = _order(dataset, frames.shape[0], where, record_id)
    slope = float(dataset.get("RescaleSlope", 1.0) or 1.0)
    intercept = float(dataset.get("RescaleIntercept", 0.0) or 0.0)
    stacked = frames[order].astype(np.float32) * slope + intercept
    meta = {
        "format": "dicom",
        "n_frames": int(frames.shape[0]),
        "dicom": header,
        "orientation_assumed": True,
        "axes": "i lateral (columns), j axial depth (rows), k slow axis (frames)",
        "rescale_slope": slope,
        "rescale_intercept": intercept,
    }
    array = np.ascontiguousarray(stacked.transpose(2, 1, 0))
    return Volume(array, ophthalmic_affine(col_mm, row_mm, slice_mm), "OPT", meta)


def write_oct_dicom(
    array: np.ndarray,
    spacing_mm: tuple[float, float, float],
    path: str | Path,
    *,
    header: dict[str, Any] | None = None,
    seed: int = 0,
    spacing_in: str = "shared-groups",
    shuffle_frames: bool = False,
) -> Path:
    """Write ``array`` ``(i lateral, j depth, k slow)`` (values 0..255) as one multi-frame OPT DICOM file.

    Args:
        array: Voxel values, cast to ``uint8``.
        spacing_mm: ``(lateral column spacing, axial row spacing, spacing between B-scans)`` in mm.
        path: Output file.
        header: Extra attributes by keyword (``PatientName``, ...); missing UIDs are generated from ``seed``.
        seed: Seeds UIDs and the frame shuffle.
        spacing_in: ``"shared-groups"`` (Pixel Measures in the Shared Functional Groups, as the OPT IOD
            has it), ``"per-frame"`` (Pixel Measures per frame) or ``"top-level"`` (``PixelSpacing`` and
            ``SliceThickness`` on the dataset, as some vendor exports write).
        shuffle_frames: Store the B-scans in a shuffled order; ``InStackPositionNumber`` keeps their place.

    Returns:
        ``path``.
    """
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.sequence import Sequence
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    if spacing_in not in ("shared-groups", "per-frame", "top-level"):
        raise ValueError(f"spacing_in must be shared-groups, per-frame or top-level, got {spacing_in!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = dict(header or {})
    col_mm, row_mm, slice_mm = (float(v) for v in spacing_mm)
    frames = np.clip(np.rint(np.asarray(array).transpose(2, 1, 0)), 0, 255).astype(np.uint8)  # [k, j, i]
    order = (
        np.random.default_rng(seed).permutation(frames.shape[0]) if shuffle_frames else np.arange(len(frames))
    )
    sop = header.pop("SOPInstanceUID", generate_uid(entropy_srcs=[f"opt-sop-{seed}"]))
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = OPT_STORAGE
    meta.MediaStorageSOPInstanceUID = sop
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = OPT_STORAGE
    ds.SOPInstanceUID = sop
    ds.StudyInstanceUID = header.pop("StudyInstanceUID", generate_uid(entropy_srcs=[f"opt-study-{seed}"]))
    ds.SeriesInstanceUID = header.pop("SeriesInstanceUID", generate_uid(entropy_srcs=[f"opt-series-{seed}"]))
    ds.Modality = "OPT"
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.NumberOfFrames = int(frames.shape[0])
    ds.Rows, ds.Columns = int(frames.shape[1]), int(frames.shape[2])
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
    ds.PixelRepresentation = 0

    def measures() -> Dataset:
        item = Dataset()
        item.PixelSpacing = [row_mm, col_mm]
        item.SliceThickness = slice_mm
        return item

    if spacing_in == "top-level":
        ds.PixelSpacing = [row_mm, col_mm]
        ds.SliceThickness = slice_mm
    shared = Dataset()
    if spacing_in == "shared-groups":
        shared.PixelMeasuresSequence = Sequence([measures()])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    per_frame = []
    for k in order:
        item = Dataset()
        content = Dataset()
        content.StackID = "1"
        content.InStackPositionNumber = int(k) + 1
        item.FrameContentSequence = Sequence([content])
        if spacing_in == "per-frame":
            item.PixelMeasuresSequence = Sequence([measures()])
        per_frame.append(item)
    ds.PerFrameFunctionalGroupsSequence = Sequence(per_frame)
    for keyword, value in header.items():
        setattr(ds, keyword, value)
    ds.PixelData = np.ascontiguousarray(frames[order]).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path
