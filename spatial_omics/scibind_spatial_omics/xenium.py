"""Xenium-style cell tables paired with an H&E image through an alignment matrix.

Layout read (Xenium Onboard Analysis output, plus the H&E registered in Xenium Explorer)::

    cells.parquet | cells.csv.gz | cells.csv   cell_id, x_centroid, y_centroid (µm), ...
    cell_feature_matrix.h5                     counts, cells x features (10x HDF5; only 'Gene Expression'
                                               features are kept: control probes/codewords are dropped)
      or cell_feature_matrix.h5ad / .parquet / .csv   (a cell x gene table: cell_id + one column per gene)
      or transcripts.parquet                   one row per molecule, counted per cell (qv >= 20, genes
                                               only; :mod:`scibind_spatial_omics.transcripts`)
    *_he_image.ome.tif | *he_image*.{tif,png,jpg}     the H&E (or give he_image=)
    *alignment.csv                             3x3 affine, H&E pixels (x, y, 1) -> Xenium µm (x, y, 1)
    experiment.xenium                          JSON; pixel_size (µm per morphology pixel), when the
                                               alignment maps to morphology pixels instead of µm

Geometry: ``M`` maps an H&E pixel ``(x, y, 1)`` (x = column, y = row) to Xenium coordinates in µm, so a
cell centred at ``(x_centroid, y_centroid)`` µm sits at ``inv(M) @ (x, y, 1)`` in the H&E. The image's
µm per pixel is ``sqrt(|det M[:2, :2]|)``. Patches are axis-aligned squares of the H&E (when ``M`` rotates,
they are rotated relative to the Xenium frame). Cells whose centre falls outside the H&E get
``in_tissue = 0`` (``build_spot_pairs`` drops them by default); when more than half do, the alignment is
taken to be wrong (e.g. the inverse matrix) and reading fails naming the file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from scibind.errors import ReadError

from scibind_spatial_omics.visium import SpotImage, load_spot_image

__all__ = [
    "XENIUM_PIXEL_SIZE_UM",
    "XeniumSample",
    "is_xenium_folder",
    "read_alignment",
    "read_cells",
    "read_xenium",
]

XENIUM_PIXEL_SIZE_UM = 0.2125
"""µm per pixel of the Xenium morphology image (used when ``experiment.xenium`` does not say)."""

CELL_FILES = ("cells.parquet", "cells.csv.gz", "cells.csv")
MATRIX_FILES = (
    "cell_feature_matrix.h5",
    "cell_feature_matrix.h5ad",
    "cell_feature_matrix.parquet",
    "cell_feature_matrix.csv.gz",
    "cell_feature_matrix.csv",
    "transcripts.parquet",
)


def is_xenium_folder(path: Path) -> bool:
    """Whether ``path`` is a folder with a Xenium cell table."""
    return path.is_dir() and any((path / name).is_file() for name in CELL_FILES)


def read_alignment(path: Path) -> np.ndarray:
    """Read a Xenium ``*_alignment.csv``: a 3x3 affine matrix, comma-separated, optional header.

    Raises:
        ReadError: Not 3x3 numbers, last row not ``0, 0, 1``, or not invertible.
    """
    path = Path(path)
    try:
        lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    except FileNotFoundError as exc:
        raise ReadError("alignment file not found", path=path) from exc
    rows = []
    for line in lines:
        try:
            rows.append([float(v) for v in line.replace(";", ",").split(",")])
        except ValueError:
            if rows:
                raise ReadError(f"non-numeric alignment row {line!r}", path=path) from None
    matrix = np.asarray(rows, dtype=np.float64)
    if matrix.shape != (3, 3):
        raise ReadError(f"expected a 3x3 affine matrix, got shape {matrix.shape}", path=path)
    if not np.allclose(matrix[2], [0.0, 0.0, 1.0], atol=1e-6):
        raise ReadError(
            f"the last row of an affine matrix must be 0,0,1; got {matrix[2].tolist()}", path=path
        )
    if abs(np.linalg.det(matrix[:2, :2])) < 1e-12:
        raise ReadError("the alignment matrix is not invertible", path=path)
    return matrix


def read_cells(path: Path) -> Any:
    """Read a Xenium cell table (``cells.parquet`` / ``.csv(.gz)``) indexed by ``cell_id``.

    Raises:
        ReadError: Unreadable, missing ``cell_id`` / ``x_centroid`` / ``y_centroid``, or non-numeric centres.
    """
    import pandas as pd

    path = Path(path)
    try:
        frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    except FileNotFoundError as exc:
        raise ReadError("cell table not found", path=path) from exc
    except Exception as exc:
        raise ReadError(f"cannot read the cell table ({type(exc).__name__}: {exc})", path=path) from exc
    missing = [c for c in ("cell_id", "x_centroid", "y_centroid") if c not in frame.columns]
    if missing:
        raise ReadError(
            f"the cell table lacks {missing}; Xenium writes cell_id, x_centroid, y_centroid (µm)", path=path
        )
    centres = frame[["x_centroid", "y_centroid"]].apply(pd.to_numeric, errors="coerce")
    if centres.isna().any().any():
        row = int(np.flatnonzero(centres.isna().any(axis=1).to_numpy())[0])
        raise ReadError(f"non-numeric cell centre in row {row}", path=path)
    centres.index = pd.Index([_cell_id(v) for v in frame["cell_id"]])
    return centres


def _cell_id(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _find(folder: Path, patterns: tuple[str, ...]) -> Path | None:
    for pattern in patterns:
        found = sorted(p for p in folder.glob(pattern) if p.is_file())
        if found:
            return found[0]
    return None


@dataclass
class XeniumSample:
    """One Xenium section with its registered H&E; used like a :class:`~.visium.VisiumSample`.

    Attributes:
        name: Sample name (the folder name unless given).
        positions: pandas frame indexed by cell id with ``in_tissue`` (centre on the H&E),
            ``x_um``, ``y_um``, and ``pxl_row_in_fullres`` / ``pxl_col_in_fullres`` (H&E pixels).
        alignment: The 3x3 matrix H&E pixel -> µm.
        images: ``{"fullres": H&E path}`` (the H&E is the full-resolution image: scale factor 1).
        matrix_path: The expression file (10x ``.h5``, ``.h5ad`` or a cell x gene table).
        source: The folder.
        he_reader: How the H&E is read (``"auto"``, ``"pathology"``, ``"plain"``; see
            :mod:`scibind_spatial_omics.he_slides`).
    """

    name: str
    positions: Any
    alignment: np.ndarray
    images: dict[str, Path]
    matrix_path: Path
    source: Path
    _image: SpotImage | None = None
    he_reader: str = "auto"

    @property
    def mpp_fullres(self) -> float:
        """µm per H&E pixel, ``sqrt(|det M[:2, :2]|)``."""
        return float(np.sqrt(abs(np.linalg.det(self.alignment[:2, :2]))))

    def image(self, name: str = "auto") -> SpotImage:
        """The H&E (``"auto"``, ``"fullres"`` or ``"he"`` all name it).

        Raises:
            ReadError: Another image name.
        """
        if name not in ("auto", "fullres", "he"):
            raise ReadError(f"a Xenium sample has one H&E image; got image={name!r}", path=self.source)
        if self._image is None:
            path = self.images["fullres"]
            self._image = load_spot_image(
                path, "fullres", 1.0, mpp_um=self.mpp_fullres, he_reader=self.he_reader
            )
        return self._image

    def spot_pixels(self, image: SpotImage, barcodes: list[str] | None = None) -> np.ndarray:
        """``float[n, 2]`` (row, col) H&E pixels of the cells ``barcodes`` (default: all)."""
        frame = self.positions if barcodes is None else self.positions.loc[barcodes]
        return frame[["pxl_row_in_fullres", "pxl_col_in_fullres"]].to_numpy(dtype=np.float64) * image.scalef

    def read_expression(self) -> Any:
        """The expression as an in-memory AnnData (CSR), cells as obs, genes only (no control features).

        Raises:
            ReadError: Unreadable matrix, or a table without ``cell_id``.
        """
        return read_cell_matrix(self.matrix_path, cells=[str(c) for c in self.positions.index])


def read_cell_matrix(path: Path, cells: list[str] | None = None) -> Any:
    """A Xenium cell x feature matrix as AnnData, keeping ``Gene Expression`` features of 10x files.

    A ``transcripts.parquet`` is counted per cell (:mod:`scibind_spatial_omics.transcripts`).

    Args:
        path: The matrix, table or transcripts file.
        cells: Row order for a transcripts file (cells without molecules get zero rows).

    Raises:
        ReadError: Unreadable file, or a table without ``cell_id``.
    """
    import anndata as ad
    import pandas as pd
    import scipy.sparse as sp

    from scibind_spatial_omics.matrix import ExpressionMatrix, decode_strings, to_anndata

    path = Path(path)
    name = path.name.lower()
    if name.endswith("transcripts.parquet"):
        from scibind_spatial_omics.transcripts import count_transcripts

        return count_transcripts(path, cells=cells)
    if name.endswith((".h5", ".h5ad")):
        matrix = ExpressionMatrix.open(path)
        adata = to_anndata(matrix)
        if name.endswith(".h5"):
            import h5py

            with h5py.File(path, "r") as handle:
                features = handle["matrix"].get("features", {})
                if "feature_type" in features:
                    types = decode_strings(features["feature_type"][()])
                    keep = [t == "Gene Expression" for t in types]
                    adata = adata[:, np.asarray(keep)].copy()
        return adata
    try:
        frame = pd.read_parquet(path) if name.endswith(".parquet") else pd.read_csv(path)
    except Exception as exc:
        raise ReadError(
            f"cannot read the cell x gene table ({type(exc).__name__}: {exc})", path=path
        ) from exc
    if "cell_id" not in frame.columns:
        raise ReadError("the cell x gene table has no 'cell_id' column", path=path)
    ids = [_cell_id(v) for v in frame.pop("cell_id")]
    try:
        values = frame.to_numpy(dtype=np.float32)
    except ValueError as exc:
        raise ReadError(f"the cell x gene table has non-numeric values ({exc})", path=path) from exc
    return ad.AnnData(
        X=sp.csr_matrix(values),
        obs=pd.DataFrame(index=pd.Index(ids)),
        var=pd.DataFrame(index=pd.Index([str(c) for c in frame.columns])),
    )


def read_xenium(
    folder: str | Path,
    *,
    he_image: str | Path | None = None,
    alignment: str | Path | None = None,
    alignment_units: Literal["um", "pixels"] = "um",
    name: str | None = None,
    he_reader: str = "auto",
) -> XeniumSample:
    """Read a Xenium folder (cell table + cell feature matrix) and its registered H&E.

    Args:
        folder: The Xenium output folder.
        he_image: The H&E (default: ``*he_image*`` in the folder).
        alignment: The 3x3 alignment CSV (default: ``*alignment.csv`` in the folder, then beside the image).
        alignment_units: What the matrix maps H&E pixels to: ``"um"`` (Xenium coordinates) or ``"pixels"``
            of the morphology image (then scaled by ``pixel_size`` of ``experiment.xenium``, default 0.2125).
        name: Sample name (default: the folder name).
        he_reader: How the H&E is read: ``"auto"`` (through the pathology plugin's slide reader when
            installed and OpenSlide reads the file, else whole), ``"pathology"`` or ``"plain"``.

    Raises:
        ReadError: A file is missing or malformed, or most cells fall outside the H&E; names the file.
    """
    folder = Path(folder)
    cells_file = _find(folder, CELL_FILES)
    if cells_file is None:
        raise ReadError(f"no Xenium cell table ({', '.join(CELL_FILES)})", path=folder)
    matrix_file = _find(folder, MATRIX_FILES)
    if matrix_file is None:
        raise ReadError(f"no cell feature matrix ({', '.join(MATRIX_FILES)})", path=folder)
    image_path = (
        Path(he_image)
        if he_image is not None
        else _find(folder, ("*he_image*.ome.tif", "*he_image*.tif", "*he_image*.png", "*he_image*.jpg"))
    )
    if image_path is None:
        raise ReadError("no H&E image (*he_image*.ome.tif/.tif/.png/.jpg); give he_image=", path=folder)
    align_path = Path(alignment) if alignment is not None else _find(folder, ("*alignment.csv",))
    if align_path is None:
        align_path = _find(image_path.parent, ("*alignment.csv",))
    if align_path is None:
        raise ReadError(
            "no *alignment.csv (3x3 matrix, H&E pixels -> µm, from Xenium Explorer); give alignment=",
            path=folder,
        )
    matrix = read_alignment(align_path)
    if alignment_units == "pixels":
        pixel_size = XENIUM_PIXEL_SIZE_UM
        experiment = folder / "experiment.xenium"
        if experiment.is_file():
            pixel_size = float(
                json.loads(experiment.read_text(encoding="utf-8")).get("pixel_size", pixel_size)
            )
        matrix = np.diag([pixel_size, pixel_size, 1.0]) @ matrix
    elif alignment_units != "um":
        raise ReadError(f"alignment_units must be 'um' or 'pixels', got {alignment_units!r}", path=align_path)
    cells = read_cells(cells_file)
    um = np.column_stack([cells["x_centroid"], cells["y_centroid"], np.ones(len(cells))])
    px = np.linalg.solve(matrix, um.T).T  # (x = col, y = row, 1)
    sample = XeniumSample(
        name=name or folder.name,
        positions=None,
        alignment=matrix,
        images={"fullres": image_path},
        matrix_path=matrix_file,
        source=folder,
        he_reader=he_reader,
    )
    height, width = sample.image().shape
    inside = (px[:, 1] >= 0) & (px[:, 1] < height) & (px[:, 0] >= 0) & (px[:, 0] < width)
    if len(cells) and inside.mean() < 0.5:
        raise ReadError(
            f"{int((~inside).sum())} of {len(cells)} cell centres fall outside the {width}x{height} H&E "
            f"{image_path.name}; the alignment matrix does not map this image's pixels to these µm "
            "(inverse matrix? alignment_units='pixels'?)",
            path=align_path,
        )
    import pandas as pd

    sample.positions = pd.DataFrame(
        {
            "in_tissue": inside.astype(int),
            "x_um": cells["x_centroid"].to_numpy(),
            "y_um": cells["y_centroid"].to_numpy(),
            "pxl_row_in_fullres": px[:, 1],
            "pxl_col_in_fullres": px[:, 0],
        },
        index=cells.index,
    )
    return sample
