"""Tissue masks on the real slide, their GeoJSON export, and user GeoJSON masks being honoured."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scibind.errors import ReadError
from scibind_pathology.slide import open_slide
from scibind_pathology.tiling import TilingConfig, plan_tiles
from scibind_pathology.tissue import TissueMask, mask_from_geojson, mask_to_geojson, segment_tissue


def test_cmu_mask_covers_the_stained_tissue(cmu_slide: Path, cmu_pixels: np.ndarray):
    with open_slide(cmu_slide) as slide:
        mask = segment_tissue(slide)
    assert mask.downsample == pytest.approx(8.0 / 0.499)
    assert mask.mask.shape == (186, 139)
    assert 0.2 < mask.fraction < 0.7
    # independent check: tissue pixels are darker than the excluded background on average
    ds = mask.downsample
    small = cmu_pixels[:: int(ds), :: int(ds)].mean(axis=-1)[: mask.mask.shape[0], : mask.mask.shape[1]]
    inside, outside = (
        small[mask.mask[: small.shape[0], : small.shape[1]]],
        small[~mask.mask[: small.shape[0], : small.shape[1]]],
    )
    assert inside.mean() < outside.mean() - 20


def test_geojson_round_trip_is_qupath_shaped(cmu_slide: Path, tmp_path: Path):
    with open_slide(cmu_slide) as slide:
        mask = segment_tissue(slide)
    geo = mask_to_geojson(mask)
    assert geo["type"] == "FeatureCollection" and geo["features"]
    feature = geo["features"][0]
    assert feature["geometry"]["type"] == "Polygon"
    assert feature["properties"]["objectType"] == "annotation"
    ring = feature["geometry"]["coordinates"][0]
    assert ring[0] == ring[-1] and max(p[0] for p in ring) <= 2220 + 20  # level-0 pixel coordinates
    path = tmp_path / "cmu.geojson"
    path.write_text(json.dumps(geo))
    back = mask_from_geojson(path, (2220, 2967), downsample=mask.downsample)
    iou = (back.mask & mask.mask).sum() / (back.mask | mask.mask).sum()
    assert iou > 0.95


def test_user_geojson_restricts_tiles(cmu_slide: Path, tmp_path: Path):
    region = {"type": "Polygon", "coordinates": [[[0, 0], [1024, 0], [1024, 768], [0, 768], [0, 0]]]}
    path = tmp_path / "region.geojson"
    path.write_text(
        json.dumps({"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": region}]})
    )
    with open_slide(cmu_slide) as slide:
        mask = mask_from_geojson(path, slide.dimensions, downsample=16.0)
        grid = plan_tiles(slide, TilingConfig(mpp=0.5, tile_size=256, min_tissue=0.5), mask)
    assert sorted(map(tuple, grid.coords.tolist())) == [
        (x, y) for x in (0, 256, 512, 768) for y in (0, 256, 512)
    ]


def test_geojson_without_polygons_is_an_error(tmp_path: Path):
    path = tmp_path / "points.geojson"
    path.write_text(json.dumps({"type": "Point", "coordinates": [1, 2]}))
    with pytest.raises(ReadError, match=r"points\.geojson.*no Polygon"):
        mask_from_geojson(path, (100, 100), downsample=1.0)


@settings(max_examples=30, deadline=None)
@given(
    boxes=st.lists(
        st.tuples(st.integers(0, 50), st.integers(0, 50), st.integers(4, 30), st.integers(4, 30)),
        min_size=1,
        max_size=4,
    )
)
def test_mask_geojson_round_trip_property(boxes):
    mask = np.zeros((90, 90), dtype=bool)
    for r, c, h, w in boxes:
        mask[r : r + h, c : c + w] = True
    original = TissueMask(mask, downsample=4.0)
    back = mask_from_geojson(mask_to_geojson(original), (360, 360), downsample=4.0)
    assert (back.mask != mask).sum() <= 0.05 * mask.sum() + 8
