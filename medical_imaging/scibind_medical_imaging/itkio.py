"""MetaImage (``.mha``, ``.mhd`` + raw) and NRRD (``.nrrd``, ``.nhdr`` + raw) volumes via SimpleITK.

SimpleITK is optional (``pip install 'scibind-medical-imaging[itk]'``). ITK describes an image by origin,
spacing and a direction matrix in LPS+ world coordinates (like DICOM) and returns voxel arrays in ``(z, y,
x)`` order; the reader turns both into this plugin's convention: an ``(i, j, k)`` array and a voxel -> RAS+
affine. No key/value field of the header is copied (free-text fields can hold identifiers).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from scibind.errors import MissingDependencyError, ReadError

from scibind_medical_imaging.volume import LPS_TO_RAS, Volume

__all__ = ["ITK_SUFFIXES", "detached_data_files", "is_itk", "read_itk"]

ITK_SUFFIXES = (".mha", ".mhd", ".nrrd", ".nhdr")
"""File name endings read through SimpleITK."""
_DETACHED = {".mhd": r"^\s*ElementDataFile\s*=\s*(.+?)\s*$", ".nhdr": r"^\s*data ?file\s*:\s*(.+?)\s*$"}


def is_itk(path: Path) -> bool:
    """Whether ``path`` names a MetaImage or NRRD file."""
    return path.name.lower().endswith(ITK_SUFFIXES)


def detached_data_files(path: Path, record_id: str = "") -> list[Path]:
    """The data file a detached header (``.mhd``, ``.nhdr``) names, so that edits to it change cache keys.

    Attached formats (``.mha``, ``.nrrd``) return ``[]``.

    Raises:
        ReadError: The header names no data file, a file list or pattern, or a file that does not exist.
    """
    suffix = path.suffix.lower()
    if suffix not in _DETACHED:
        return []
    where = {"path": path, "record": record_id or None}
    try:
        text = path.read_text(encoding="latin-1")
    except OSError as exc:
        raise ReadError(f"cannot read the header ({exc})", **where) from exc
    match = re.search(_DETACHED[suffix], text, flags=re.MULTILINE | re.IGNORECASE)
    if match is None:
        raise ReadError("the detached header names no data file (ElementDataFile / data file)", **where)
    name = match.group(1)
    if name.upper() in ("LOCAL", "LIST") or name.upper().startswith("LIST") or "%" in name:
        raise ReadError(
            f"data file {name!r}: only a single detached data file is supported; convert to .mha or .nrrd",
            **where,
        )
    data = path.parent / name
    if not data.is_file():
        raise ReadError(f"the data file {name!r} named by the header does not exist", **where)
    return [data]


def read_itk(path: str | Path, *, record_id: str = "", volume_index: int | None = None) -> Volume:
    """Read a MetaImage or NRRD image with SimpleITK: 2D, 3D, or 4D with ``volume_index``.

    Returns a :class:`Volume` with the array indexed ``(i, j, k)`` (ITK's x, y, z) and ``affine`` mapping
    voxels to RAS+ mm, built from the file's origin, spacing and direction. ``meta`` holds ``format``
    (``mha``/``nrrd``), ``file_shape`` (ITK's size, x first), ``dtype`` and ``volume_index``.

    Raises:
        MissingDependencyError: SimpleITK is not installed.
        ReadError: The file is corrupt or truncated, multi-component (RGB, vector), 4D without
            ``volume_index`` or of another dimension, or its direction matrix is singular.
    """
    try:
        import SimpleITK as sitk
    except ImportError as exc:
        raise MissingDependencyError(
            "reading MHA/NRRD needs SimpleITK; pip install 'scibind-medical-imaging[itk]' (or SimpleITK)"
        ) from exc
    path = Path(path)
    where = {"path": path, "record": record_id or None}
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as exc:  # ITK's exceptions arrive as RuntimeError
        first = str(exc).strip().splitlines()
        detail = next((line for line in reversed(first) if line.strip()), "unknown ITK error")
        raise ReadError(f"not a readable MHA/NRRD image ({detail.strip()[:200]})", **where) from exc
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise ReadError(
            f"{image.GetNumberOfComponentsPerPixel()} components per voxel (RGB or vector image); only "
            "scalar images are volumes",
            **where,
        )
    dim = image.GetDimension()
    size = list(image.GetSize())
    try:
        array = sitk.GetArrayViewFromImage(image)  # reversed axes: (t,) z, y, x
    except RuntimeError as exc:
        raise ReadError(f"the voxel data is unreadable ({exc})", **where) from exc
    if dim == 4:
        if volume_index is None:
            raise ReadError(
                f"4D image of size {size}: choose one volume with volume_index (0..{size[3] - 1})", **where
            )
        if not -size[3] <= volume_index < size[3]:
            raise ReadError(f"volume_index {volume_index} is out of range for {size[3]} volumes", **where)
        array = array[volume_index]
    elif dim not in (2, 3):
        raise ReadError(f"expected a 2D, 3D or 4D image, got {dim} dimensions", **where)
    data = np.ascontiguousarray(np.asarray(array, dtype=np.float32).T)  # -> (x, y[, z])
    if dim == 2:
        data = data[..., None]
    n = min(dim, 3)
    direction = np.eye(3)
    direction[:n, :n] = np.asarray(image.GetDirection(), dtype=np.float64).reshape(dim, dim)[:n, :n]
    spacing = np.ones(3)
    spacing[:n] = np.asarray(image.GetSpacing(), dtype=np.float64)[:n]
    origin = np.zeros(3)
    origin[:n] = np.asarray(image.GetOrigin(), dtype=np.float64)[:n]
    lps = np.eye(4)
    lps[:3, :3] = direction * spacing[None, :]
    lps[:3, 3] = origin
    if not np.all(np.isfinite(lps)) or abs(np.linalg.det(lps[:3, :3])) < 1e-12:
        raise ReadError("the header's direction/spacing is singular or not finite; fix the header", **where)
    name = path.name.lower()
    meta = {
        "format": "mha" if name.endswith((".mha", ".mhd")) else "nrrd",
        "file_shape": size,
        "dtype": image.GetPixelIDTypeAsString(),
        "volume_index": volume_index,
    }
    return Volume(data, LPS_TO_RAS @ lps, "", meta)
