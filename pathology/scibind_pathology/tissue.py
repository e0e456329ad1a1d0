"""Tissue segmentation on a low-resolution view of a slide, and its exchange with QuPath as GeoJSON.

:func:`segment_tissue` thresholds HSV saturation with Otsu's method (stained tissue is saturated, glass and
background are not), closes small gaps, fills holes below a size and drops specks below a size; sizes are
in µm² so they mean the same at any scan resolution. :func:`mask_to_geojson` writes the mask as polygons in
level-0 pixel coordinates (QuPath's convention), and :func:`mask_from_geojson` rasterises a user's GeoJSON
annotation back into a mask, so a hand-drawn region replaces the automatic one.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scibind.errors import ReadError

__all__ = ["TissueMask", "mask_from_geojson", "mask_to_geojson", "segment_tissue"]


@dataclass
class TissueMask:
    """A boolean tissue mask over the whole slide at a coarse scale.

    Attributes:
        mask: ``bool[h, w]``; ``True`` = tissue.
        downsample: Level-0 pixels per mask pixel.
        source: ``otsu`` (segmented) or the GeoJSON file it was read from.
    """

    mask: np.ndarray
    downsample: float
    source: str = "otsu"

    def __post_init__(self) -> None:
        padded = np.zeros((self.mask.shape[0] + 1, self.mask.shape[1] + 1), dtype=np.int64)
        padded[1:, 1:] = np.cumsum(np.cumsum(self.mask.astype(np.int64), axis=0), axis=1)
        self._integral = padded

    @property
    def fraction(self) -> float:
        """Fraction of the slide covered by tissue."""
        return float(self.mask.mean()) if self.mask.size else 0.0

    def tissue_fractions(self, coords: np.ndarray, size_level0: float) -> np.ndarray:
        """Fraction of tissue under each square tile.

        Args:
            coords: ``int[N, 2]`` level-0 ``(x, y)`` of the tiles' top-left corners.
            size_level0: Tile side in level-0 pixels.

        Returns:
            ``float[N]`` in ``[0, 1]`` (the mask's area inside the tile over the tile's area in the mask).
        """
        h, w = self.mask.shape
        if len(coords) == 0:
            return np.zeros(0)
        x0 = np.clip(np.floor(coords[:, 0] / self.downsample).astype(np.int64), 0, w)
        y0 = np.clip(np.floor(coords[:, 1] / self.downsample).astype(np.int64), 0, h)
        x1 = np.clip(np.ceil((coords[:, 0] + size_level0) / self.downsample).astype(np.int64), 0, w)
        y1 = np.clip(np.ceil((coords[:, 1] + size_level0) / self.downsample).astype(np.int64), 0, h)
        area = np.maximum((x1 - x0) * (y1 - y0), 1)
        s = self._integral
        inside = s[y1, x1] - s[y0, x1] - s[y1, x0] + s[y0, x0]
        return inside / area


def _saturation(rgb: np.ndarray) -> np.ndarray:
    rgbf = rgb.astype(np.float32)
    top = rgbf.max(axis=-1)
    bottom = rgbf.min(axis=-1)
    return np.where(top > 0, (top - bottom) / np.maximum(top, 1e-6), 0.0)


def segment_tissue(
    slide: Any,
    *,
    mask_mpp: float = 8.0,
    min_area_um2: float = 20_000.0,
    max_hole_um2: float = 5_000.0,
    closing_um: float = 16.0,
    min_saturation: float = 0.04,
) -> TissueMask:
    """Segment tissue: Otsu threshold on HSV saturation, closing, hole filling, small-object removal.

    Args:
        slide: A :class:`scibind_pathology.slide.Slide`.
        mask_mpp: µm/px of the mask (read from the coarsest level at least this fine, then resized).
        min_area_um2: Tissue pieces smaller than this are dropped.
        max_hole_um2: Holes smaller than this are filled (larger ones, such as lumens, are kept).
        closing_um: Radius of the morphological closing that bridges small gaps.
        min_saturation: Floor under the Otsu threshold, so an empty slide does not become all tissue.

    Returns:
        The :class:`TissueMask` at ``downsample = mask_mpp / slide.mpp``.
    """
    from PIL import Image
    from skimage.filters import threshold_otsu
    from skimage.morphology import closing, disk, remove_small_holes, remove_small_objects

    downsample = max(mask_mpp / slide.mpp, 1.0)
    level = slide.best_level_for_mpp(slide.mpp * downsample, tolerance=0.0)
    image = Image.fromarray(slide.read_level(level))
    width, height = slide.dimensions
    size = (max(1, math.ceil(width / downsample)), max(1, math.ceil(height / downsample)))
    if image.size != size:
        image = image.resize(size, Image.Resampling.BILINEAR)
    sat = _saturation(np.asarray(image))
    threshold = min_saturation
    if float(sat.max()) - float(sat.min()) > 1e-3:
        threshold = max(float(threshold_otsu(sat)), min_saturation)
    mask = sat > threshold
    pixel_um2 = (slide.mpp * downsample) ** 2
    radius = round(closing_um / (slide.mpp * downsample))
    if radius >= 1:
        mask = closing(mask, disk(radius))
    mask = remove_small_holes(mask, max_size=max(int(max_hole_um2 / pixel_um2), 0))
    mask = remove_small_objects(mask, max_size=max(int(min_area_um2 / pixel_um2), 0))
    return TissueMask(np.asarray(mask, dtype=bool), downsample)


def _ring(contour: np.ndarray, downsample: float, offset: tuple[int, int]) -> list[list[float]]:
    from skimage.measure import approximate_polygon

    simple = approximate_polygon(contour, tolerance=0.75)
    points = [
        [round((c + offset[1]) * downsample, 2), round((r + offset[0]) * downsample, 2)] for r, c in simple
    ]
    if points[0] != points[-1]:
        points.append(points[0])
    return points


def _outline(image: np.ndarray) -> np.ndarray | None:
    from skimage.measure import find_contours

    padded = np.pad(image.astype(np.float32), 1)
    contours = find_contours(padded, 0.5)
    if not contours:
        return None
    longest = max(contours, key=len)
    return longest - 1.0 + 0.5  # undo the padding; pixel centres -> pixel edges


def mask_to_geojson(mask: TissueMask, *, name: str = "Tissue") -> dict[str, Any]:
    """The mask as a GeoJSON FeatureCollection of polygons (with holes) in level-0 pixels, as QuPath reads it.

    Args:
        mask: The tissue mask.
        name: The classification QuPath shows.
    """
    from skimage.measure import label, regionprops

    features = []
    for region in regionprops(label(mask.mask, connectivity=2)):
        top, left = region.bbox[0], region.bbox[1]
        outer = _outline(region.image_filled)
        if outer is None or len(outer) < 3:
            continue
        rings = [_ring(outer, mask.downsample, (top, left))]
        holes = region.image_filled & ~region.image
        for hole in regionprops(label(holes, connectivity=1)):
            contour = _outline(hole.image)
            if contour is not None and len(contour) >= 3:
                rings.append(_ring(contour, mask.downsample, (top + hole.bbox[0], left + hole.bbox[1])))
        features.append(
            {
                "type": "Feature",
                "geometry": {"type": "Polygon", "coordinates": rings},
                "properties": {
                    "objectType": "annotation",
                    "classification": {"name": name, "color": [0, 160, 0]},
                    "area_px_level0": float(region.area * mask.downsample**2),
                },
            }
        )
    return {"type": "FeatureCollection", "features": features}


def _polygons(geometry: dict[str, Any]) -> list[list[Any]]:
    kind = geometry.get("type")
    if kind == "Polygon":
        return [geometry["coordinates"]]
    if kind == "MultiPolygon":
        return list(geometry["coordinates"])
    if kind == "GeometryCollection":
        return [p for g in geometry.get("geometries", []) for p in _polygons(g)]
    return []


def mask_from_geojson(
    source: str | Path | dict[str, Any], dimensions: tuple[int, int], *, downsample: float
) -> TissueMask:
    """Rasterise the polygons of a GeoJSON (level-0 pixel coordinates, e.g. from QuPath) into a mask.

    Polygon, MultiPolygon, Feature, FeatureCollection and GeometryCollection objects are accepted; holes
    are cut out.

    Args:
        source: A ``.geojson`` path or the parsed object.
        dimensions: ``(width, height)`` of the slide's level 0.
        downsample: Level-0 pixels per mask pixel.

    Raises:
        ReadError: The file is not JSON or holds no polygon.
    """
    from skimage.draw import polygon as fill_polygon

    path = None
    if isinstance(source, (str, Path)):
        path = Path(source)
        try:
            source = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ReadError(f"cannot read the GeoJSON tissue mask ({exc})", path=path) from exc
    objects = source.get("features", [source]) if isinstance(source, dict) else source
    if isinstance(objects, dict):
        objects = [objects]
    width, height = dimensions
    shape = (max(1, math.ceil(height / downsample)), max(1, math.ceil(width / downsample)))
    mask = np.zeros(shape, dtype=bool)
    count = 0
    for obj in objects:
        geometry = obj.get("geometry", obj) if isinstance(obj, dict) else {}
        for rings in _polygons(geometry or {}):
            for k, ring in enumerate(rings):
                pts = np.asarray(ring, dtype=np.float64).reshape(-1, 2) / downsample
                rr, cc = fill_polygon(pts[:, 1] - 0.5, pts[:, 0] - 0.5, shape=shape)
                mask[rr, cc] = k == 0  # the first ring is the outline, the others are holes
            count += 1
    if count == 0:
        raise ReadError(
            "the GeoJSON holds no Polygon or MultiPolygon; draw the tissue region in QuPath and export it "
            "as GeoJSON",
            path=path,
        )
    return TissueMask(mask, downsample, source=str(path) if path is not None else "geojson")
