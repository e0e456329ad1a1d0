"""NIfTI (``.nii``, ``.nii.gz``; 3D, or 4D with a volume index) and TIFF stacks -> :class:`Volume`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scibind.errors import ReadError

from scibind_medical_imaging.volume import Volume

__all__ = ["read_nifti", "read_tiff_stack"]


def read_nifti(path: str | Path, *, record_id: str = "", volume_index: int | None = None) -> Volume:
    """Read a NIfTI-1/2 image with nibabel (scaling ``scl_slope``/``scl_inter`` applied).

    The affine is nibabel's best affine (sform, else qform). A 4D image needs ``volume_index`` (the
    fourth axis is time or channels); 5D and higher are rejected.

    Args:
        path: The file.
        record_id: For error messages.
        volume_index: Which volume of a 4D image to read (negative counts from the end).

    Raises:
        ReadError: The header is corrupt, the data is truncated, the affine is singular or a 4D image was
            read without ``volume_index``.
    """
    import nibabel as nib

    path = Path(path)
    where = {"path": path, "record": record_id or None}
    try:
        image = nib.load(path)
    except Exception as exc:  # nibabel raises ImageFileError, HeaderDataError, OSError, ValueError, EOFError
        raise ReadError(
            f"not a readable NIfTI image, the header is corrupt ({type(exc).__name__}: {exc})", **where
        ) from exc
    shape = tuple(int(s) for s in image.shape)
    if len(shape) == 4:
        if volume_index is None:
            raise ReadError(
                f"4D image of shape {shape}: choose one volume with volume_index (0..{shape[3] - 1})", **where
            )
        if not -shape[3] <= volume_index < shape[3]:
            raise ReadError(f"volume_index {volume_index} is out of range for {shape[3]} volumes", **where)
    elif len(shape) not in (2, 3):
        raise ReadError(f"expected a 2D, 3D or 4D image, got shape {shape}", **where)
    try:
        proxy = image.dataobj
        data = proxy[..., volume_index] if len(shape) == 4 else proxy[...]
        array = np.asarray(data, dtype=np.float32)
    except (OSError, ValueError, EOFError, IndexError) as exc:
        raise ReadError(
            f"the voxel data is truncated or unreadable ({type(exc).__name__}: {exc})", **where
        ) from exc
    if array.ndim == 2:
        array = array[..., None]
    affine = np.asarray(image.affine, dtype=np.float64)
    if not np.all(np.isfinite(affine)) or abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        raise ReadError(
            "the header's affine (sform/qform) is singular or not finite; fix the header", **where
        )
    header = image.header
    meta = {
        "format": "nifti",
        "file_shape": list(shape),
        "dtype": str(header.get_data_dtype()),
        "volume_index": volume_index,
        "xyzt_units": [str(u) for u in header.get_xyzt_units()],
    }
    return Volume(np.ascontiguousarray(array), affine, "", meta)


def read_tiff_stack(
    path: str | Path, *, record_id: str = "", spacing_mm: Sequence[float] | None = None
) -> Volume:
    """Read a multi-page TIFF (pages = slices, e.g. an OCT B-scan stack) with the voxel size given.

    TIFF has no standard 3D geometry, so ``spacing_mm`` ``(x, y, z)`` is required (``x`` along image
    columns, ``y`` along rows, ``z`` between pages); the orientation is taken as the identity.

    Raises:
        ReadError: ``spacing_mm`` is missing, or the file is not a readable greyscale stack.
    """
    import tifffile

    path = Path(path)
    where = {"path": path, "record": record_id or None}
    if spacing_mm is None or len(spacing_mm) != 3:
        raise ReadError(
            "a TIFF stack carries no voxel geometry; pass spacing_mm=[x, y, z] (mm) to the reader", **where
        )
    try:
        array = tifffile.imread(path)
    except Exception as exc:  # tifffile raises TiffFileError, ValueError, OSError
        raise ReadError(f"cannot read the TIFF stack ({type(exc).__name__}: {exc})", **where) from exc
    if array.ndim == 2:
        array = array[None]
    if array.ndim != 3:
        raise ReadError(f"expected greyscale pages [Z, Y, X], got shape {array.shape}", **where)
    affine = np.diag([float(spacing_mm[0]), float(spacing_mm[1]), float(spacing_mm[2]), 1.0])
    data = np.ascontiguousarray(array.astype(np.float32).transpose(2, 1, 0))
    return Volume(data, affine, "", {"format": "tiff-stack", "spacing_given": True})
