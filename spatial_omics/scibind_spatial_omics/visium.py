"""Space Ranger Visium output (``outs/`` layout) and spot-centred H&E patches of a physical size.

Layout read (Space Ranger 1.x and 2.x)::

    filtered_feature_bc_matrix.h5           counts, barcodes x genes (10x HDF5)
    spatial/tissue_positions_list.csv       no header: barcode,in_tissue,array_row,array_col,pxl_row,pxl_col
    spatial/tissue_positions.csv            the same with a header row (Space Ranger >= 2.0)
    spatial/tissue_positions.parquet        the same columns as parquet (Space Ranger >= 2.1, Visium HD)
    spatial/scalefactors_json.json          spot_diameter_fullres, tissue_hires_scalef, tissue_lowres_scalef
    spatial/tissue_hires_image.png          the H&E downscaled by tissue_hires_scalef
    spatial/tissue_lowres_image.png         ... by tissue_lowres_scalef

Pixel coordinates in the positions file are full-resolution pixels; an image downscaled by ``scalef`` has
the spot at ``pxl * scalef``. The physical scale comes from the Visium spot diameter (55 µm):
``mpp_fullres = 55 / spot_diameter_fullres``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scibind.errors import ReadError

__all__ = [
    "VISIUM_SPOT_DIAMETER_UM",
    "SpotImage",
    "VisiumSample",
    "crop_patch",
    "load_image",
    "load_spot_image",
    "read_positions",
    "read_scalefactors",
    "read_visium",
    "visium_from_h5ad",
]

VISIUM_SPOT_DIAMETER_UM = 55.0
"""Diameter of a Visium spot in µm (10x Genomics specification)."""

POSITION_COLUMNS = (
    "barcode",
    "in_tissue",
    "array_row",
    "array_col",
    "pxl_row_in_fullres",
    "pxl_col_in_fullres",
)


@dataclass
class SpotImage:
    """An H&E image of the section and how its pixels relate to full resolution.

    Exactly one of ``pixels`` (the image loaded whole) and ``slide`` (read region by region through the
    pathology plugin, :mod:`scibind_spatial_omics.he_slides`) is set.

    Attributes:
        path: The image file (or the h5ad it was stored in).
        name: ``"fullres"``, ``"hires"`` or ``"lowres"``.
        scalef: Image pixels per full-resolution pixel (1 for the full-resolution image).
        pixels: ``uint8[H, W, 3]``, or ``None`` when read through ``slide``.
        slide: An open ``scibind_pathology.slide.Slide`` (level 0 = this image), or ``None``.
    """

    path: Path
    name: str
    scalef: float
    pixels: np.ndarray | None = None
    slide: Any = None

    @property
    def reader(self) -> str:
        """``"pathology"`` (regions through the slide reader) or ``"plain"`` (loaded whole)."""
        return "plain" if self.slide is None else "pathology"

    @property
    def shape(self) -> tuple[int, int]:
        """``(height, width)`` in pixels."""
        if self.slide is not None:
            width, height = self.slide.dimensions
            return int(height), int(width)
        assert self.pixels is not None
        return int(self.pixels.shape[0]), int(self.pixels.shape[1])

    @property
    def is_blank(self) -> bool:
        """Whether the image is one flat colour (Space Ranger placeholders, test fixtures)."""
        pixels = self.slide.thumbnail(256) if self.slide is not None else self.pixels
        return bool(pixels is None or pixels.size == 0 or pixels.min() == pixels.max())


@dataclass
class VisiumSample:
    """One Visium capture area: spot positions, scale factors, images and the expression matrix.

    Attributes:
        name: Sample name (the folder name unless given).
        positions: pandas frame indexed by barcode with ``in_tissue``, ``array_row``, ``array_col``,
            ``pxl_row_in_fullres``, ``pxl_col_in_fullres``.
        scalefactors: The ``scalefactors_json.json`` values.
        images: Available images by name (``fullres``, ``hires``, ``lowres``); loaded lazily by
            :meth:`image`.
        matrix_path: The expression matrix (10x ``.h5`` or ``.h5ad``).
        source: The folder or file the sample was read from.
        he_reader: How the full-resolution image is read (``"auto"``, ``"pathology"``, ``"plain"``).
    """

    name: str
    positions: Any
    scalefactors: dict[str, float]
    images: dict[str, Path]
    matrix_path: Path
    source: Path
    _loaded: dict[str, SpotImage] | None = None
    _inline: dict[str, np.ndarray] | None = None
    he_reader: str = "auto"

    @property
    def mpp_fullres(self) -> float:
        """µm per full-resolution pixel, from the spot diameter."""
        return VISIUM_SPOT_DIAMETER_UM / float(self.scalefactors["spot_diameter_fullres"])

    def scalef(self, name: str) -> float:
        """Image pixels per full-resolution pixel of image ``name``.

        Raises:
            ReadError: The scale factor of that image is missing from the scale factors.
        """
        if name == "fullres":
            return 1.0
        key = f"tissue_{name}_scalef"
        if key not in self.scalefactors:
            raise ReadError(
                f"scale factors have no {key!r} (keys: {sorted(self.scalefactors)}); the {name} image cannot "
                "be placed. Use another image or add the factor from Space Ranger's output",
                path=self.source,
            )
        return float(self.scalefactors[key])

    def image(self, name: str = "auto") -> SpotImage:
        """Load image ``name``; ``"auto"`` = the sharpest non-blank one (fullres, then hires, then lowres).

        Raises:
            ReadError: No such image, or every image is blank.
        """
        self._loaded = self._loaded or {}
        names = [n for n in ("fullres", "hires", "lowres") if n in self.images] if name == "auto" else [name]
        if not names or names[0] not in self.images:
            raise ReadError(
                f"no {name!r} image; available: {sorted(self.images)}. Give the full-resolution H&E with "
                "fullres_image=...",
                path=self.source,
            )
        for candidate in names:
            if candidate not in self._loaded:
                scalef = self.scalef(candidate)
                self._loaded[candidate] = (
                    SpotImage(self.images[candidate], candidate, scalef, self._inline[candidate])
                    if self._inline and candidate in self._inline
                    else load_spot_image(
                        self.images[candidate],
                        candidate,
                        scalef,
                        mpp_um=self.mpp_fullres / scalef,
                        he_reader=self.he_reader if candidate == "fullres" else "plain",
                    )
                )
            if name != "auto" or not self._loaded[candidate].is_blank:
                return self._loaded[candidate]
        raise ReadError(
            f"every image ({', '.join(names)}) is blank (one flat colour); "
            "give the real H&E with fullres_image=",
            path=self.source,
        )

    def read_expression(self) -> Any:
        """The expression matrix as an in-memory AnnData (CSR), spots as obs.

        Raises:
            ReadError: The matrix cannot be read.
        """
        from scibind_spatial_omics.matrix import ExpressionMatrix, to_anndata

        matrix = ExpressionMatrix.open(self.matrix_path)
        try:
            return to_anndata(matrix)
        finally:
            matrix.close()

    def spot_pixels(self, image: SpotImage, barcodes: list[str] | None = None) -> np.ndarray:
        """``float[n, 2]`` (row, col) pixel centres of ``barcodes`` (default: all) in ``image``.

        Raises:
            ReadError: A barcode is not in the positions file.
        """
        frame = self.positions
        if barcodes is not None:
            missing = [b for b in barcodes if b not in frame.index]
            if missing:
                raise ReadError(
                    f"{len(missing)} barcodes of the matrix are not in the positions file "
                    f"(e.g. {missing[:3]}); "
                    "the matrix and spatial/ folder come from different runs",
                    path=self.source,
                )
            frame = frame.loc[barcodes]
        full = frame[["pxl_row_in_fullres", "pxl_col_in_fullres"]].to_numpy(dtype=np.float64)
        return full * image.scalef


def load_image(path: Path) -> np.ndarray:
    """Read an RGB(A)/grey PNG, JPEG or TIFF as ``uint8[H, W, 3]``.

    Raises:
        ReadError: The file is missing or not an image.
    """
    path = Path(path)
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            import tifffile

            array = np.asarray(tifffile.imread(path))
        else:
            from PIL import Image

            with Image.open(path) as handle:
                array = np.asarray(handle.convert("RGB"))
    except FileNotFoundError as exc:
        raise ReadError("image file not found", path=path) from exc
    except Exception as exc:
        raise ReadError(f"cannot read the image ({type(exc).__name__}: {exc})", path=path) from exc
    return as_rgb_uint8(array, path)


def load_spot_image(
    path: Path, name: str, scalef: float, *, mpp_um: float, he_reader: str = "auto"
) -> SpotImage:
    """Open an H&E as a :class:`SpotImage`: through the pathology plugin's slide reader or loaded whole.

    Args:
        path: The image file.
        name: ``"fullres"``, ``"hires"``, ``"lowres"``.
        scalef: Image pixels per full-resolution pixel.
        mpp_um: µm/px of this image from the spatial geometry (the slide's unit when the file has none).
        he_reader: ``"auto"``, ``"pathology"`` or ``"plain"`` (:mod:`scibind_spatial_omics.he_slides`).

    Raises:
        ReadError: The file is missing or unreadable.
        ConfigError: Bad ``he_reader``, or ``"pathology"`` without the plugin.
    """
    from scibind_spatial_omics.he_slides import open_he_slide

    slide = open_he_slide(path, mpp_um=mpp_um, reader=he_reader)
    if slide is not None:
        return SpotImage(Path(path), name, scalef, slide=slide)
    return SpotImage(Path(path), name, scalef, load_image(path))


def as_rgb_uint8(array: np.ndarray, path: Path) -> np.ndarray:
    """Bring an image array to ``uint8[H, W, 3]`` (floats in [0, 1] are scaled by 255)."""
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] not in (3, 4):
        raise ReadError(f"expected an RGB image, got shape {array.shape}", path=path)
    array = array[:, :, :3]
    if array.dtype != np.uint8:
        scale = 255.0 if float(np.nanmax(array)) <= 1.0 else 1.0
        array = np.clip(np.asarray(array, dtype=np.float64) * scale, 0, 255).round().astype(np.uint8)
    return array


def read_scalefactors(path: Path) -> dict[str, float]:
    """Read ``scalefactors_json.json``.

    Raises:
        ReadError: Missing file, bad JSON, or no ``spot_diameter_fullres``.
    """
    try:
        values = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ReadError(
            "scale factors file is missing; Space Ranger writes spatial/scalefactors_json.json", path=path
        ) from exc
    except ValueError as exc:
        raise ReadError(f"scale factors are not valid JSON ({exc})", path=path) from exc
    if not isinstance(values, dict) or "spot_diameter_fullres" not in values:
        raise ReadError(
            "scale factors lack 'spot_diameter_fullres', needed for the physical patch size", path=path
        )
    return {str(k): float(v) for k, v in values.items()}


def read_positions(path: Path) -> Any:
    """Read a Space Ranger positions file: ``.csv`` with or without header, or ``.parquet``.

    ``tissue_positions_list.csv`` has no header, ``tissue_positions.csv`` has one, and
    ``tissue_positions.parquet`` (Space Ranger >= 2) names its columns as in ``POSITION_COLUMNS``.

    Returns:
        A pandas frame indexed by barcode.

    Raises:
        ReadError: Unreadable file, wrong columns or non-numeric coordinates.
    """
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise ReadError("positions file not found", path=path)
    has_header = True
    if path.suffix.lower() == ".parquet":
        try:
            frame = pd.read_parquet(path)
        except Exception as exc:
            raise ReadError(
                f"cannot read the parquet positions ({type(exc).__name__}: {exc})", path=path
            ) from exc
        missing = [c for c in POSITION_COLUMNS if c not in frame.columns]
        if missing:
            raise ReadError(
                f"the parquet positions lack columns {missing}; expected {', '.join(POSITION_COLUMNS)}",
                path=path,
            )
        frame = frame[list(POSITION_COLUMNS)]
    else:
        first = path.read_text(encoding="utf-8").split("\n", 1)[0]
        has_header = first.lower().startswith("barcode")
        frame = pd.read_csv(path, header=0 if has_header else None, dtype={0: str})
    if frame.shape[1] != len(POSITION_COLUMNS):
        raise ReadError(
            f"expected {len(POSITION_COLUMNS)} columns ({', '.join(POSITION_COLUMNS)}), got {frame.shape[1]}",
            path=path,
        )
    frame.columns = list(POSITION_COLUMNS)
    numeric = frame[list(POSITION_COLUMNS[1:])].apply(pd.to_numeric, errors="coerce")
    bad = numeric.isna().any(axis=1)
    if bad.any():
        line = int(np.flatnonzero(bad.to_numpy())[0]) + 1 + int(has_header)
        where = "row" if path.suffix.lower() == ".parquet" else "line"
        raise ReadError(f"non-numeric position at {where} {line}", path=path)
    numeric.index = frame["barcode"].astype(str)
    return numeric


def read_visium(
    folder: str | Path,
    *,
    fullres_image: str | Path | None = None,
    name: str | None = None,
    he_reader: str = "auto",
) -> VisiumSample:
    """Read a Space Ranger ``outs/`` folder.

    Args:
        folder: The folder holding ``filtered_feature_bc_matrix.h5`` and ``spatial/``.
        fullres_image: The full-resolution H&E (TIFF/JPEG/PNG) the positions refer to, when available.
        name: Sample name (default: the folder name).
        he_reader: How the full-resolution image is read: ``"auto"`` (through the pathology plugin's slide
            reader when installed and the file is a slide, else whole), ``"pathology"`` or ``"plain"``.

    Raises:
        ReadError: A required file is missing or malformed; the message names it.
    """
    folder = Path(folder)
    spatial = folder / "spatial"
    if not spatial.is_dir():
        raise ReadError("no spatial/ folder; expected a Space Ranger outs/ folder", path=folder)
    matrix = next(
        (
            p
            for p in (folder / "filtered_feature_bc_matrix.h5", folder / "raw_feature_bc_matrix.h5")
            if p.is_file()
        ),
        None,
    )
    if matrix is None:
        raise ReadError("no filtered_feature_bc_matrix.h5 (or raw_feature_bc_matrix.h5)", path=folder)
    positions_file = next(
        (
            spatial / n
            for n in ("tissue_positions.parquet", "tissue_positions.csv", "tissue_positions_list.csv")
            if (spatial / n).is_file()
        ),
        None,
    )
    if positions_file is None:
        raise ReadError(
            "no spatial/tissue_positions.parquet, tissue_positions.csv or tissue_positions_list.csv",
            path=folder,
        )
    images = {
        n: spatial / f"tissue_{n}_image.png"
        for n in ("hires", "lowres")
        if (spatial / f"tissue_{n}_image.png").is_file()
    }
    if fullres_image is not None:
        images["fullres"] = Path(fullres_image)
    return VisiumSample(
        name=name or folder.name,
        positions=read_positions(positions_file),
        scalefactors=read_scalefactors(spatial / "scalefactors_json.json"),
        images=images,
        matrix_path=matrix,
        source=folder,
        he_reader=he_reader,
    )


def visium_from_h5ad(
    path: str | Path,
    *,
    fullres_image: str | Path | None = None,
    library_id: str | None = None,
    name: str | None = None,
    he_reader: str = "auto",
) -> VisiumSample:
    """A Visium sample from an AnnData file with ``obsm['spatial']`` and ``uns['spatial'][library_id]``.

    ``obsm['spatial']`` holds full-resolution ``(x, y)`` = ``(col, row)`` pixels (scanpy/squidpy convention).

    Args:
        path: The ``.h5ad`` file.
        fullres_image: The full-resolution image those pixels refer to.
        library_id: Key of ``uns['spatial']`` (default: the only one).
        name: Sample name (default: the library id).
        he_reader: How ``fullres_image`` is read (see :func:`read_visium`).

    Raises:
        ReadError: No ``obsm['spatial']``, no or ambiguous library, no scale factors.
    """
    import anndata as ad
    import pandas as pd

    path = Path(path)
    adata = ad.read_h5ad(path, backed="r")
    try:
        if "spatial" not in adata.obsm:
            raise ReadError("no obsm['spatial'] spot coordinates", path=path)
        libraries = adata.uns.get("spatial", {})
        if library_id is None:
            if len(libraries) != 1:
                raise ReadError(
                    f"uns['spatial'] has libraries {sorted(libraries)}; pass library_id= to pick one",
                    path=path,
                )
            library_id = next(iter(libraries))
        if library_id not in libraries or "scalefactors" not in libraries[library_id]:
            raise ReadError(f"uns['spatial'][{library_id!r}] has no scalefactors", path=path)
        library = libraries[library_id]
        xy = np.asarray(adata.obsm["spatial"], dtype=np.float64)
        positions = pd.DataFrame(
            {
                "in_tissue": adata.obs["in_tissue"].to_numpy() if "in_tissue" in adata.obs else 1,
                "array_row": 0,
                "array_col": 0,
                "pxl_row_in_fullres": xy[:, 1],
                "pxl_col_in_fullres": xy[:, 0],
            },
            index=pd.Index([str(b) for b in adata.obs_names]),
        )
        inline = {str(k): as_rgb_uint8(np.asarray(v), path) for k, v in library.get("images", {}).items()}
        scalefactors = {str(k): float(v) for k, v in library["scalefactors"].items()}
    finally:
        adata.file.close()
    if "spot_diameter_fullres" not in scalefactors:
        raise ReadError(
            f"uns['spatial'][{library_id!r}]['scalefactors'] lacks spot_diameter_fullres", path=path
        )
    images = {n: path for n in inline}
    if fullres_image is not None:
        images["fullres"] = Path(fullres_image)
    return VisiumSample(
        name=name or str(library_id),
        positions=positions,
        scalefactors=scalefactors,
        images=images,
        matrix_path=path,
        source=path,
        _inline=inline,
        he_reader=he_reader,
    )


def crop_patch(image: SpotImage, centre_rc: tuple[float, float], size_px: float, out_px: int) -> np.ndarray:
    """Crop a square of ``size_px`` image pixels centred on ``centre_rc`` and resize it to ``out_px``.

    Parts of the square outside the image are filled with white (slide background). An image read through
    the pathology plugin decodes only the square, from the coarsest pyramid level fine enough for ``out_px``.

    Raises:
        ReadError: The centre itself lies outside the image (positions and image do not belong together).
    """
    from PIL import Image

    height, width = image.shape
    row, col = centre_rc
    if not (0 <= row < height and 0 <= col < width):
        raise ReadError(
            f"spot centre (row {row:.1f}, col {col:.1f}) lies outside the "
            f"{width}x{height} {image.name} image; "
            "the positions, scale factors and image do not belong together",
            path=image.path,
        )
    half = size_px / 2.0
    top, left = int(np.floor(row - half)), int(np.floor(col - half))
    side = max(1, round(size_px))
    if image.slide is not None:
        from scibind_spatial_omics.he_slides import slide_patch

        return slide_patch(image.slide, top, left, side, out_px)
    assert image.pixels is not None
    canvas = np.full((side, side, 3), 255, dtype=np.uint8)
    r0, c0 = max(top, 0), max(left, 0)
    r1, c1 = min(top + side, height), min(left + side, width)
    canvas[r0 - top : r1 - top, c0 - left : c1 - left] = image.pixels[r0:r1, c0:c1]
    resample = Image.Resampling.BOX if side > out_px else Image.Resampling.NEAREST
    return np.asarray(Image.fromarray(canvas).resize((out_px, out_px), resample))
