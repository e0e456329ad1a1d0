"""Readers: slides and feature files as ``wsi_bag`` samples, single tiles as ``wsi_tile`` samples.

- :class:`WSIReader` (``pathology/wsi``) claims every OpenSlide format. ``describe`` is what
  ``scibind inspect SLIDE`` shows; ``prepare`` (``scibind prepare``) segments tissue, writes the GeoJSON
  mask and the tile coordinates (TRIDENT/CLAM h5), and with an ``encoder`` the tile features; ``read``
  turns a feature file (``.h5``) or a slide (encoded through the feature cache) into a bag.
- :class:`TileReader` (``pathology/tile``) reads one tile at an exact µm/px from ``{slide, x, y}``
  (manifest columns ``<view>.slide``, ``<view>.x``, ``<view>.y``) or from a tile image file.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from scibind.data.readers import Reader
from scibind.data.types import Sample
from scibind.errors import ReadError

from scibind_pathology.tiling import TilingConfig

__all__ = ["TileReader", "WSIReader", "default_cache_dir"]

FEATURE_SUFFIXES = (".h5", ".hdf5")


def default_cache_dir() -> Path:
    """``$SCIBIND_CACHE_DIR/pathology-features`` (default ``~/.cache/scibind/pathology-features``)."""
    root = os.environ.get("SCIBIND_CACHE_DIR") or "~/.cache/scibind"
    return Path(root).expanduser() / "pathology-features"


def _resolve(value: Any, base_dir: Path | None, record_id: str) -> Path:
    if not isinstance(value, (str, os.PathLike)) or not str(value).strip():
        raise ReadError(
            f"expected a slide or feature-file path, got {type(value).__name__} {value!r}",
            record=record_id or None,
        )
    path = Path(str(value).strip()).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    if not path.exists():
        raise ReadError("no such file; check the path in the manifest", path=path, record=record_id or None)
    return path


class WSIReader(Reader):
    """Whole-slide images and their feature files -> ``wsi_bag`` samples.

    Args:
        mpp: Target µm/px of the tiles.
        tile_size: Tile side in pixels at ``mpp``.
        overlap: Tile overlap in pixels at ``mpp``.
        min_tissue: Minimum tissue fraction of a kept tile.
        mask_mpp: µm/px of the tissue mask.
        min_area_um2: Tissue pieces smaller than this (µm²) are dropped.
        mpp_tolerance: Relative slack under which a level is read unresized.
        slide_mpp: µm/px of slides that carry no units (ignored for slides that do).
        geojson: Tissue annotations to honour instead of segmenting: a ``.geojson`` file, or a folder holding
            ``<slide stem>.geojson`` files (slides without one are segmented).
        encoder: Tile encoder (``wsi_tile``) used to read slides as bags and by ``prepare`` to cache features.
        encoder_kwargs: Its options (e.g. ``{"path": "my-backbone/"}`` for ``pathology/pretrained``).
        cache_dir: Feature cache folder for :meth:`read` of slides (default :func:`default_cache_dir`).
        batch_size: Tiles per encoder forward pass.
        workers: Processes reading tiles of one slide.
        max_tiles: Keep at most this many tiles of a bag (evenly spaced), ``None`` for all.
    """

    modality: ClassVar[str] = "wsi_bag"

    def __init__(
        self,
        mpp: float = 0.5,
        tile_size: int = 256,
        overlap: int = 0,
        min_tissue: float = 0.25,
        mask_mpp: float = 8.0,
        min_area_um2: float = 20_000.0,
        mpp_tolerance: float = 0.02,
        slide_mpp: float | None = None,
        geojson: str | None = None,
        encoder: str | None = None,
        encoder_kwargs: dict[str, Any] | None = None,
        cache_dir: str | None = None,
        batch_size: int = 64,
        workers: int = 1,
        max_tiles: int | None = None,
    ) -> None:
        self.tiling = TilingConfig(
            mpp=float(mpp),
            tile_size=int(tile_size),
            overlap=int(overlap),
            min_tissue=float(min_tissue),
            mpp_tolerance=float(mpp_tolerance),
            mask_mpp=float(mask_mpp),
            min_area_um2=float(min_area_um2),
        )
        self.slide_mpp = slide_mpp
        self.geojson = Path(geojson).expanduser() if geojson else None
        self.encoder = encoder
        self.encoder_kwargs = dict(encoder_kwargs or {})
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else None
        self.batch_size = int(batch_size)
        self.workers = int(workers)
        self.max_tiles = max_tiles
        self._model: Any = None

    def _encoder(self) -> Any:
        if self._model is None and self.encoder is not None:
            import scibind

            self._model = scibind.create_encoder(self.encoder, **self.encoder_kwargs)
        return self._model

    def _geojson_for(self, slide: Path) -> Path | None:
        if self.geojson is None:
            return None
        if self.geojson.is_dir():
            candidate = self.geojson / f"{slide.stem}.geojson"
            return candidate if candidate.is_file() else None
        return self.geojson

    def _bag(self, features: np.ndarray, coords: np.ndarray) -> dict[str, Any]:
        import torch

        if self.max_tiles is not None and len(features) > self.max_tiles:
            keep = np.linspace(0, len(features) - 1, self.max_tiles).round().astype(np.int64)
            features, coords = features[keep], coords[keep]
        return {"features": torch.from_numpy(features.copy()), "coords": torch.from_numpy(coords.copy())}

    def read(self, value: Any, *, record_id: str = "", base_dir: Path | None = None) -> Sample:
        """Read a feature file (``.h5``, TRIDENT/CLAM layout) or a slide (encoded through the cache).

        Raises:
            ReadError: Missing/corrupt file, no units, or a slide given without an ``encoder``.
        """
        from scibind_pathology.features import extract_features, load_features

        path = _resolve(value, base_dir, record_id)
        try:
            if path.suffix.lower() in FEATURE_SUFFIXES:
                bag = load_features(path)
            else:
                if self.encoder is None:
                    raise ReadError(
                        "a slide is read as a bag of tile features, which needs a tile encoder: set the "
                        "reader "
                        "option encoder (e.g. pathology/tiny) or point the manifest at feature files (.h5)",
                        path=path,
                    )
                cache = extract_features(
                    path,
                    self.cache_dir or default_cache_dir(),
                    tiling=self.tiling,
                    encoder=self.encoder,
                    encoder_kwargs=self.encoder_kwargs,
                    slide_mpp=self.slide_mpp,
                    geojson=self._geojson_for(path),
                    batch_size=self.batch_size,
                    workers=self.workers,
                    model=self._encoder(),
                )
                bag = load_features(cache)
        except ReadError as exc:
            if exc.record is None and record_id:
                raise ReadError(exc.reason, path=exc.path or path, record=record_id) from exc
            raise
        if len(bag.features) == 0:
            raise ReadError(
                "the slide has no tile with enough tissue; lower min_tissue or check the tissue mask",
                path=path,
                record=record_id or None,
            )
        meta = {
            "source": str(path),
            "record": record_id,
            "n_tiles": len(bag.features),
            "feature_dim": int(bag.features.shape[1]),
            "mpp": bag.attrs.get("target_mpp"),
            "encoder": bag.attrs.get("encoder"),
        }
        return Sample(
            id=record_id, modality=self.modality, data=self._bag(bag.features, bag.coords), meta=meta
        )

    def describe(self, path: Path) -> dict[str, Any]:
        """Slide: vendor, levels (dimensions, downsample, µm/px), ``mpp_x``/``mpp_y``, associated images.

        Feature file: number of tiles, feature width and the recorded tiling and encoder.
        """
        from scibind_pathology.slide import open_slide

        path = Path(path)
        if path.suffix.lower() in FEATURE_SUFFIXES:
            from scibind_pathology.features import load_features

            bag = load_features(path)
            return {
                "modality": self.modality,
                "source": str(path),
                "n_tiles": len(bag.features),
                "feature_dim": int(bag.features.shape[1]),
                **{k: v.item() if hasattr(v, "item") else v for k, v in bag.attrs.items()},
            }
        with open_slide(path, slide_mpp=self.slide_mpp) as slide:
            return slide.describe()

    def prepare(self, path: Path, out_dir: Path) -> dict[str, Any]:
        """Tile one slide into ``out_dir`` (what ``scibind prepare`` runs per slide).

        Writes ``<stem>.h5`` (coords, plus features with an encoder), ``<stem>.geojson`` (the tissue mask,
        QuPath-readable) and ``<stem>.thumbnail.png``; asks ``scibind prepare`` to publish the h5 and the
        GeoJSON at the top of its output folder (``DIR/<slide>.h5``, the TRIDENT/CLAM layout).

        Returns:
            A summary: tile counts, read level, µm/px, files written.
        """
        import json

        from PIL import Image
        from scibind.atomic import atomic_replace, atomic_write_text

        from scibind_pathology.features import extract_features
        from scibind_pathology.slide import open_slide
        from scibind_pathology.tiling import plan_tiles, save_coords
        from scibind_pathology.tissue import mask_from_geojson, mask_to_geojson, segment_tissue

        path = Path(path)
        out_dir = Path(out_dir)
        stem = path.stem
        geojson = self._geojson_for(path)
        with open_slide(path, slide_mpp=self.slide_mpp) as slide:
            downsample = self.tiling.mask_mpp / slide.mpp
            if geojson is not None:
                mask = mask_from_geojson(geojson, slide.dimensions, downsample=downsample)
            else:
                mask = segment_tissue(
                    slide, mask_mpp=self.tiling.mask_mpp, min_area_um2=self.tiling.min_area_um2
                )
            grid = plan_tiles(slide, self.tiling, mask)
            thumb = slide.thumbnail(1024)
            info = slide.describe()
        atomic_write_text(out_dir / f"{stem}.geojson", json.dumps(mask_to_geojson(mask)))
        atomic_replace(out_dir / f"{stem}.thumbnail.png", lambda tmp: Image.fromarray(thumb).save(tmp, "PNG"))
        h5 = out_dir / f"{stem}.h5"
        if self.encoder is not None:
            cache = extract_features(
                path,
                out_dir / "features",
                tiling=self.tiling,
                encoder=self.encoder,
                encoder_kwargs=self.encoder_kwargs,
                slide_mpp=self.slide_mpp,
                batch_size=self.batch_size,
                workers=self.workers,
                grid=grid,
                model=self._encoder(),
                tissue_source=str(geojson) if geojson else f"otsu@{self.tiling.mask_mpp}",
            )
            os.replace(cache, h5)
            (out_dir / "features").rmdir()
        else:
            save_coords(h5, grid, name=stem, extra={"tissue_mask": mask.source})
        return {
            "source": str(path),
            "vendor": info["vendor"],
            "mpp_x": info["mpp_x"],
            "mpp_y": info["mpp_y"],
            "n_tiles": len(grid),
            "target_mpp": self.tiling.mpp,
            "tile_size": self.tiling.tile_size,
            "read_level": grid.read_level,
            "patch_size_level0": grid.patch_size_level0,
            "tissue_fraction": round(mask.fraction, 4),
            "tissue_mask": mask.source,
            "encoder": self.encoder,
            "h5": str(h5),
            "publish": [h5.name, f"{stem}.geojson"],
        }


class TileReader(Reader):
    """One tile at an exact µm/px -> ``float32[3, tile_size, tile_size]`` in ``[0, 1]``.

    Values: ``{"slide": path, "x": int, "y": int}`` (level-0 top-left corner; manifest columns
    ``<view>.slide``, ``<view>.x``, ``<view>.y``), or the path of a tile image (PNG/JPEG/TIFF), which is
    resized from its own µm/px (``slide_mpp`` when the file has none) to ``mpp``.

    Args:
        mpp: Target µm/px.
        tile_size: Tile side in pixels at ``mpp``.
        slide_mpp: µm/px of files that carry no units.
        mpp_tolerance: Relative slack under which a level is read unresized.
    """

    modality: ClassVar[str] = "wsi_tile"

    def __init__(
        self,
        mpp: float = 0.5,
        tile_size: int = 224,
        slide_mpp: float | None = None,
        mpp_tolerance: float = 0.02,
    ) -> None:
        self.tiling = TilingConfig(
            mpp=float(mpp), tile_size=int(tile_size), min_tissue=0.0, mpp_tolerance=mpp_tolerance
        )
        self.slide_mpp = slide_mpp
        self._open: dict[str, Any] = {}

    def _slide(self, path: Path) -> Any:
        from scibind_pathology.slide import open_slide

        key = str(path)
        if key not in self._open:
            if len(self._open) >= 8:
                self._open.pop(next(iter(self._open))).close()
            self._open[key] = open_slide(path, slide_mpp=self.slide_mpp)
        return self._open[key]

    def read(self, value: Any, *, record_id: str = "", base_dir: Path | None = None) -> Sample:
        """Read one tile.

        Raises:
            ReadError: Bad value, unreadable slide, no units, or a corner outside the slide.
        """
        import torch

        from scibind_pathology.tiling import plan_tiles, read_tile

        if isinstance(value, Mapping):
            missing = [k for k in ("slide", "x", "y") if k not in value or value[k] is None]
            if missing:
                raise ReadError(
                    f"a tile needs slide, x and y (manifest columns <view>.slide, <view>.x, <view>.y); "
                    f"missing {missing}",
                    record=record_id or None,
                )
            path = _resolve(value["slide"], base_dir, record_id)
            try:
                x, y = int(float(value["x"])), int(float(value["y"]))
            except (TypeError, ValueError) as exc:
                raise ReadError(
                    f"tile corner x={value['x']!r} y={value['y']!r} is not a pair of integers",
                    path=path,
                    record=record_id or None,
                ) from exc
        else:
            path, x, y = _resolve(value, base_dir, record_id), 0, 0
        slide = self._slide(path)
        grid = plan_tiles(slide, self.tiling)
        width, height = slide.dimensions
        if isinstance(value, Mapping) and not (
            0 <= x <= width - grid.patch_size_level0 and 0 <= y <= height - grid.patch_size_level0
        ):
            raise ReadError(
                f"tile at x={x} y={y} of side {grid.patch_size_level0} level-0 px does not fit in the slide "
                f"({width}x{height})",
                path=path,
                record=record_id or None,
            )
        if not isinstance(value, Mapping) and (width, height) != (grid.patch_size_level0,) * 2:
            from PIL import Image

            rgb = slide.read_level(0)
            size = self.tiling.tile_size
            scale = slide.mpp / self.tiling.mpp
            resized = Image.fromarray(rgb).resize(
                (max(1, round(width * scale)), max(1, round(height * scale))), Image.Resampling.BILINEAR
            )
            tile = np.asarray(resized)[:size, :size]
            if tile.shape[:2] != (size, size):
                raise ReadError(
                    f"the image covers {tile.shape[1]}x{tile.shape[0]} px at {self.tiling.mpp} µm/px, "
                    "smaller "
                    f"than tile_size {size}",
                    path=path,
                    record=record_id or None,
                )
        else:
            tile = read_tile(slide, grid, x, y)
        data = torch.from_numpy(np.ascontiguousarray(tile)).permute(2, 0, 1).float() / 255.0
        meta = {"source": str(path), "record": record_id, "x": x, "y": y, "mpp": self.tiling.mpp}
        return Sample(id=record_id, modality=self.modality, data=data, meta=meta)

    def describe(self, path: Path) -> dict[str, Any]:
        """The slide or image the tiles come from (vendor, levels, µm/px)."""
        from scibind_pathology.slide import open_slide

        with open_slide(path, slide_mpp=self.slide_mpp) as slide:
            return {**slide.describe(), "modality": self.modality}
