"""DICOM: single images, enhanced multi-frame objects (OCT included) and series folders -> :class:`Volume`.

Geometry comes from the headers, never from file names: slices are sorted by their position along the
slice normal, gaps and duplicates are errors, and the voxel-to-world affine is built from Image Position /
Orientation (Patient) and Pixel Spacing (LPS), then expressed in RAS like NIfTI. Rescale slope and intercept
are applied per frame (CT becomes HU). Only :data:`scibind_medical_imaging.phi.SAFE_TAGS` reach the
metadata; error messages name files and counts, never header values.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scibind.errors import ReadError

from scibind_medical_imaging.ophthalmic import is_ophthalmic, read_ophthalmic
from scibind_medical_imaging.phi import safe_header
from scibind_medical_imaging.volume import LPS_TO_RAS, Volume

__all__ = [
    "NON_IMAGE_MODALITIES",
    "SERIES_MEMBER",
    "SERIES_SUFFIX",
    "is_image_header",
    "member_series",
    "series_groups",
    "split_member",
    "dicom_files",
    "has_preamble",
    "read_dataset",
    "read_dicom",
    "read_dicom_series",
    "series_listing",
]

NON_IMAGE_MODALITIES = frozenset({"SR", "PR", "KO", "RTSTRUCT", "RTPLAN", "REG", "SEG", "DOC", "ECG"})
"""DICOM modalities that are documents, annotations or waveforms rather than images."""

SERIES_SUFFIX = ".series.json"
"""A JSON file listing the DICOM files of one series (written by ``index_dicom``)."""

_POSITION_RTOL = 0.01
_POSITION_ATOL_MM = 0.01


def read_dataset(path: Path, *, pixels: bool = True, record_id: str = "") -> Any:
    """``pydicom.dcmread`` with errors that name the file (and never a header value).

    Raises:
        ReadError: Not a DICOM file, or truncated / unreadable.
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        return pydicom.dcmread(path, stop_before_pixels=not pixels)
    except InvalidDicomError as exc:
        raise ReadError(
            "not a DICOM file (no 'DICM' preamble); check the path or remove the file from the series",
            path=path,
            record=record_id or None,
        ) from exc
    except Exception as exc:  # pydicom raises EOFError, ValueError, OSError, struct.error on bad files
        raise ReadError(
            f"cannot parse the DICOM file, it is truncated or corrupt ({type(exc).__name__}); "
            "export it again from the PACS",
            path=path,
            record=record_id or None,
        ) from exc


def has_preamble(path: Path) -> bool:
    """Whether ``path`` starts like a DICOM Part 10 file (``DICM`` after the 128-byte preamble)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(132)
    except OSError:
        return False
    return head[128:132] == b"DICM"


def is_image(dataset: Any) -> bool:
    """Whether a dataset holds pixel data (not a report, presentation state or waveform)."""
    modality = str(dataset.get("Modality", "")).upper()
    has_pixels = any(tag in dataset for tag in ("PixelData", "FloatPixelData", "DoubleFloatPixelData"))
    return has_pixels and modality not in NON_IMAGE_MODALITIES


def is_image_header(dataset: Any) -> bool:
    """:func:`is_image` for a header read without pixel data: it has ``Rows`` and is not a document."""
    return "Rows" in dataset and str(dataset.get("Modality", "")).upper() not in NON_IMAGE_MODALITIES


def _not_image_reason(dataset: Any) -> str:
    modality = str(dataset.get("Modality", "")).upper()
    if modality == "SR":
        return "is a DICOM Structured Report (SR document), not an image; remove it from the image list"
    if modality in NON_IMAGE_MODALITIES:
        return f"is a DICOM {modality} object, not an image; remove it from the image list"
    return "has no pixel data (PixelData element missing); the file is incomplete or not an image"


@dataclass
class _Frame:
    """One 2D frame with its geometry (LPS, mm) and rescale."""

    pixels: np.ndarray
    position: np.ndarray | None
    row_cosine: np.ndarray | None
    col_cosine: np.ndarray | None
    pixel_spacing: tuple[float, float] | None
    slope: float
    intercept: float
    source: Path


def _first(sequence: Any) -> Any:
    return sequence[0] if sequence else None


def _group(dataset: Any, frame: int, sequence: str) -> Any:
    """An item of a functional-group macro, per-frame first, then shared (enhanced multi-frame objects)."""
    for groups, index in (("PerFrameFunctionalGroupsSequence", frame), ("SharedFunctionalGroupsSequence", 0)):
        items = dataset.get(groups)
        if items is not None and len(items) > index:
            found = _first(items[index].get(sequence))
            if found is not None:
                return found
    return None


def _floats(value: Any, n: int) -> np.ndarray | None:
    if value is None:
        return None
    try:
        out = np.array([float(v) for v in value], dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return out if out.shape == (n,) else None


def _pixels(dataset: Any, path: Path, record_id: str) -> np.ndarray:
    try:
        array = dataset.pixel_array
    except Exception as exc:  # missing/short PixelData, unsupported transfer syntax, missing decoder
        raise ReadError(
            f"cannot decode the pixel data ({type(exc).__name__}: {exc}); the file may be truncated, or its "
            "compression needs a decoder (pip install pylibjpeg pylibjpeg-libjpeg)",
            path=path,
            record=record_id or None,
        ) from exc
    if int(dataset.get("SamplesPerPixel", 1)) != 1:
        raise ReadError(
            "colour (multi-sample) DICOM images are not supported as volumes or radiographs",
            path=path,
            record=record_id or None,
        )
    return np.asarray(array)


def _frames(dataset: Any, path: Path, record_id: str) -> list[_Frame]:
    pixels = _pixels(dataset, path, record_id)
    n_frames = int(dataset.get("NumberOfFrames", 1) or 1)
    if n_frames == 1 and pixels.ndim == 2:
        pixels = pixels[None]
    if pixels.ndim != 3 or pixels.shape[0] != n_frames:
        raise ReadError(
            f"pixel data of shape {pixels.shape} does not match NumberOfFrames={n_frames}",
            path=path,
            record=record_id or None,
        )
    enhanced = "PerFrameFunctionalGroupsSequence" in dataset or "SharedFunctionalGroupsSequence" in dataset
    frames = []
    for index in range(n_frames):
        if enhanced:
            plane = _group(dataset, index, "PlanePositionSequence")
            orient = _group(dataset, index, "PlaneOrientationSequence")
            measures = _group(dataset, index, "PixelMeasuresSequence")
            value = _group(dataset, index, "PixelValueTransformationSequence")
            position = _floats(plane.get("ImagePositionPatient") if plane else None, 3)
            cosines = _floats(orient.get("ImageOrientationPatient") if orient else None, 6)
            spacing = _floats(measures.get("PixelSpacing") if measures else None, 2)
            source = value if value is not None else dataset
        else:
            position = _floats(dataset.get("ImagePositionPatient"), 3)
            cosines = _floats(dataset.get("ImageOrientationPatient"), 6)
            spacing = _floats(dataset.get("PixelSpacing"), 2)
            source = dataset
        frames.append(
            _Frame(
                pixels=pixels[index],
                position=position,
                row_cosine=None if cosines is None else cosines[:3],
                col_cosine=None if cosines is None else cosines[3:],
                pixel_spacing=None if spacing is None else (float(spacing[0]), float(spacing[1])),
                slope=float(source.get("RescaleSlope", 1.0) or 1.0),
                intercept=float(source.get("RescaleIntercept", 0.0) or 0.0),
                source=path,
            )
        )
    return frames


def _has_patient_geometry(frames: list[_Frame]) -> bool:
    return all(
        f.position is not None and f.row_cosine is not None and f.pixel_spacing is not None for f in frames
    )


def _stack(
    frames: list[_Frame],
    dataset: Any,
    *,
    where: Path,
    record_id: str,
    assume_spacing_mm: Sequence[float] | None,
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Sort frames along the slice normal, check spacing, stack ``(i, j, k)`` and build the RAS affine."""
    shapes = {f.pixels.shape for f in frames}
    if len(shapes) > 1:
        raise ReadError(
            f"slices have different sizes {sorted(shapes)}; the folder mixes images of different series",
            path=where,
            record=record_id or None,
        )
    geometry_known = _has_patient_geometry(frames)
    notes: dict[str, Any] = {}
    if geometry_known:
        row, col = frames[0].row_cosine, frames[0].col_cosine
        assert row is not None and col is not None
        if any(
            not (np.allclose(f.row_cosine, row, atol=1e-4) and np.allclose(f.col_cosine, col, atol=1e-4))
            for f in frames
        ):
            raise ReadError(
                "slices have different orientations (ImageOrientationPatient); they are not one volume",
                path=where,
                record=record_id or None,
            )
        normal = np.cross(row, col)
        frames = sorted(frames, key=lambda f: float(np.dot(f.position, normal)))
        depth = np.array([float(np.dot(f.position, normal)) for f in frames])
        row_mm, col_mm = frames[0].pixel_spacing  # type: ignore[misc]
        if len(frames) > 1:
            gaps = np.diff(depth)
            if np.any(gaps < _POSITION_ATOL_MM):
                raise ReadError(
                    f"{int(np.sum(gaps < _POSITION_ATOL_MM)) + 1} slices share a position; the series holds "
                    "duplicates or several acquisitions (split it by acquisition, or remove the duplicates)",
                    path=where,
                    record=record_id or None,
                )
            median = float(np.median(gaps))
            if np.any(np.abs(gaps - median) > _POSITION_ATOL_MM + _POSITION_RTOL * median):
                raise ReadError(
                    f"inconsistent slice spacing: gaps between sorted slices range from {gaps.min():.3f} to "
                    f"{gaps.max():.3f} mm (median {median:.3f}); slices are missing or the series mixes "
                    "acquisitions. Re-export the complete series",
                    path=where,
                    record=record_id or None,
                )
            slice_vector = (frames[-1].position - frames[0].position) / (len(frames) - 1)
        else:
            thickness = dataset.get("SpacingBetweenSlices") or dataset.get("SliceThickness")
            slice_mm = float(thickness) if thickness else 1.0
            notes["slice_spacing_assumed"] = not thickness
            slice_vector = normal * slice_mm
        lps = np.eye(4)
        # Column index i moves along the row direction by the column spacing (PixelSpacing[1]); row index j
        # moves along the column direction by the row spacing (PixelSpacing[0]).
        lps[:3, 0] = row * col_mm
        lps[:3, 1] = col * row_mm
        lps[:3, 2] = slice_vector
        lps[:3, 3] = frames[0].position
    elif assume_spacing_mm is not None:
        x_mm, y_mm, z_mm = (float(v) for v in assume_spacing_mm)
        lps = np.diag([x_mm, y_mm, z_mm, 1.0])
        notes["geometry_assumed"] = True
    else:
        raise ReadError(
            "the header has no complete geometry (ImagePositionPatient, ImageOrientationPatient, "
            "PixelSpacing); pass assume_spacing_mm=[x, y, z] to read it with an identity orientation",
            path=where,
            record=record_id or None,
        )
    stacked = np.stack([f.pixels.astype(np.float32) * f.slope + f.intercept for f in frames])
    slopes = {(f.slope, f.intercept) for f in frames}
    notes["rescale_slope"], notes["rescale_intercept"] = next(iter(slopes))
    notes["rescale_varies"] = len(slopes) > 1
    return np.ascontiguousarray(stacked.transpose(2, 1, 0)), LPS_TO_RAS @ lps, notes


def read_dicom(
    path: str | Path, *, record_id: str = "", assume_spacing_mm: Sequence[float] | None = None
) -> Volume:
    """Read one DICOM file: a single image (a one-slice volume) or an enhanced multi-frame volume.

    Ophthalmic tomography (OCT) without patient-space positions is read by
    :func:`scibind_medical_imaging.ophthalmic.read_ophthalmic` (voxel size from Pixel Measures).

    Args:
        path: The file.
        record_id: For error messages.
        assume_spacing_mm: Voxel size to use when the header carries no geometry (marked in the metadata
            as ``geometry_assumed``); ``None`` makes missing geometry an error.

    Raises:
        ReadError: Not DICOM, truncated, not an image (SR, ...), colour, or without geometry.
    """
    path = Path(path)
    dataset = read_dataset(path, record_id=record_id)
    if not is_image(dataset):
        raise ReadError(_not_image_reason(dataset), path=path, record=record_id or None)
    frames = _frames(dataset, path, record_id)
    if is_ophthalmic(dataset) and not _has_patient_geometry(frames):
        try:
            return read_ophthalmic(
                dataset,
                np.stack([f.pixels for f in frames]),
                where=path,
                record_id=record_id,
                header=safe_header(dataset),
            )
        except ReadError:
            if assume_spacing_mm is None:
                raise
    array, affine, notes = _stack(
        frames, dataset, where=path, record_id=record_id, assume_spacing_mm=assume_spacing_mm
    )
    meta = {"format": "dicom", "n_frames": len(frames), "dicom": safe_header(dataset), **notes}
    return Volume(array, affine, str(dataset.get("Modality", "")), meta)


def dicom_files(folder: Path) -> list[Path]:
    """Regular, non-hidden files of a folder (not recursive), ``DICOMDIR`` excluded, sorted by name."""
    return sorted(
        p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".") and p.name != "DICOMDIR"
    )


SERIES_MEMBER = "#"
"""``<folder>#<file>`` addresses the image series of a mixed folder that holds ``<file>``."""


def split_member(path: Path) -> tuple[Path, str] | None:
    """``(folder, file name)`` when ``path`` is a ``<folder>#<file>`` series address, else ``None``."""
    text = str(path)
    folder, sep, member = text.rpartition(SERIES_MEMBER)
    if not sep or not member or "/" in member or not Path(folder).is_dir():
        return None
    return Path(folder), member


def series_groups(folder: Path) -> tuple[list[list[Path]], list[Path]]:
    """Group a folder's DICOM image files by series, reading headers only.

    Returns:
        ``(series, unreadable)``: the image files of each series (sorted by name; series ordered by their
        first file), and the files that look like DICOM (``.dcm`` or a ``DICM`` preamble) but cannot be
        parsed. Documents (SR, presentation states, ...) and non-DICOM files are left out.
    """
    groups: dict[str, list[Path]] = {}
    unreadable: list[Path] = []
    for file in dicom_files(folder):
        if file.suffix.lower() != ".dcm" and not has_preamble(file):
            continue
        try:
            dataset = read_dataset(file, pixels=False)
        except ReadError:
            unreadable.append(file)
            continue
        if not is_image_header(dataset):
            continue
        groups.setdefault(str(dataset.get("SeriesInstanceUID", "")), []).append(file)
    return sorted(groups.values(), key=lambda files: files[0].name), unreadable


def member_series(path: Path, record_id: str = "") -> list[Path]:
    """The image files of the series that ``<folder>#<file>`` names (see :func:`series_groups`).

    Raises:
        ReadError: The file is not an image of any series in the folder.
    """
    folder, member = split_member(path) or (path.parent, path.name)
    for files in series_groups(folder)[0]:
        if any(f.name == member for f in files):
            return files
    raise ReadError(
        f"{member!r} is not an image of a series in this folder; prepare the folder again to list its series",
        path=folder,
        record=record_id or None,
    )


def series_listing(path: Path, record_id: str = "") -> list[Path]:
    """The files named by a ``*.series.json`` listing (relative paths resolve against its folder).

    Raises:
        ReadError: The listing is not valid JSON with a non-empty ``files`` list.
    """
    try:
        files = json.loads(path.read_text(encoding="utf-8"))["files"]
        if not isinstance(files, list) or not files or not all(isinstance(f, str) for f in files):
            raise ValueError("'files' must be a non-empty list of paths")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ReadError(
            f'not a series listing ({exc}); expected {{"files": ["a.dcm", ...]}}',
            path=path,
            record=record_id or None,
        ) from exc
    return [(path.parent / f).resolve() for f in files]


def read_dicom_series(
    files: Sequence[Path],
    *,
    where: Path,
    record_id: str = "",
    assume_spacing_mm: Sequence[float] | None = None,
) -> Volume:
    """Read the single-frame images of one series as a volume.

    Files that are not DICOM at all (no ``.dcm`` suffix and no ``DICM`` preamble, e.g. a README) are ignored;
    non-image DICOM objects (SR reports, presentation states) are skipped and counted in
    ``meta["skipped_non_image"]``. Everything else must belong to one series.

    Args:
        files: The files (order does not matter).
        where: The folder or listing, named in errors.
        record_id: For error messages.
        assume_spacing_mm: See :func:`read_dicom`.

    Raises:
        ReadError: A ``.dcm`` file is truncated or corrupt (named), the images belong to several series,
            slices are missing or duplicated, or no image is found.
    """
    images: list[tuple[Path, Any]] = []
    skipped = 0
    ignored = 0
    for file in files:
        if file.suffix.lower() != ".dcm" and not has_preamble(file):
            ignored += 1  # a README or thumbnail beside the slices; a damaged DICOM file still fails below
            continue
        dataset = read_dataset(file, record_id=record_id)
        if not is_image(dataset):
            if "PixelData" not in dataset and str(dataset.get("Modality", "")).upper() not in (
                NON_IMAGE_MODALITIES
            ):
                raise ReadError(_not_image_reason(dataset), path=file, record=record_id or None)
            skipped += 1
            continue
        images.append((file, dataset))
    if not images:
        raise ReadError(
            "no DICOM image found (only reports, other objects or non-DICOM files)",
            path=where,
            record=record_id or None,
        )
    series = {str(ds.get("SeriesInstanceUID", "")) for _, ds in images}
    if len(series) > 1:
        counts = sorted(sum(str(ds.get("SeriesInstanceUID", "")) == s for _, ds in images) for s in series)
        raise ReadError(
            f"the images belong to {len(series)} different series (SeriesInstanceUID; {counts} images "
            "each); put each series in its own folder, or index the folder with "
            "`scibind medical-index`, which writes one listing per series",
            path=where,
            record=record_id or None,
        )
    frames: list[_Frame] = []
    for file, dataset in images:
        if int(dataset.get("NumberOfFrames", 1) or 1) != 1:
            raise ReadError(
                "a multi-frame object inside a series folder; give the multi-frame file on its own",
                path=file,
                record=record_id or None,
            )
        frames.extend(_frames(dataset, file, record_id))
    first = images[0][1]
    array, affine, notes = _stack(
        frames, first, where=where, record_id=record_id, assume_spacing_mm=assume_spacing_mm
    )
    meta = {
        "format": "dicom-series",
        "n_frames": len(frames),
        "dicom": safe_header(first),
        "skipped_non_image": skipped,
        "ignored_files": ignored,
        **notes,
    }
    return Volume(array, affine, str(first.get("Modality", "")), meta)
