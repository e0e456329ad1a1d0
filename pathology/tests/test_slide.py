"""Opening slides: units, levels, inspect output and native tile reads on the real CMU slide."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import openslide
import pytest
import tifffile
from scibind.errors import ReadError
from scibind_pathology.slide import open_slide, tiff_resolution_mpp


def test_cmu_units_levels_and_associated_images(cmu_slide: Path):
    with open_slide(cmu_slide) as slide:
        info = slide.describe()
    assert info["vendor"] == "aperio"
    assert info["mpp_x"] == pytest.approx(0.499) and info["mpp_y"] == pytest.approx(0.499)
    assert info["mpp_source"] == "properties"
    assert info["levels"] == [{"level": 0, "dimensions": [2220, 2967], "downsample": 1.0, "mpp": 0.499}]
    assert info["associated_images"] == ["label", "macro", "thumbnail"]
    assert info["native_tiles"] is True


def test_scibind_inspect_json(cmu_slide: Path):
    proc = subprocess.run(
        [sys.executable, "-m", "scibind", "inspect", str(cmu_slide), "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    result = json.loads(proc.stdout)
    assert result["reader"] == "pathology/wsi"
    desc = result["description"]
    assert (desc["vendor"], desc["mpp_x"], desc["levels"][0]["dimensions"]) == ("aperio", 0.499, [2220, 2967])


def test_native_tiles_equal_openslide_on_the_svs(cmu_slide: Path):
    with open_slide(cmu_slide) as fast, openslide.OpenSlide(str(cmu_slide)) as ref:
        for tx, ty in [(0, 0), (3, 5), (7, 10)]:
            x, y = tx * 240, ty * 240
            ours = fast.read_region(x, y, 0, (240, 240))
            assert fast.native.read(x, y, 0, (240, 240)) is not None
            theirs = np.asarray(ref.read_region((x, y), 0, (240, 240)).convert("RGB"))
            assert np.abs(ours.astype(int) - theirs).max() <= 2


def test_pyramid_level_selection_and_native_reads(cmu_pyramid: Path):
    with open_slide(cmu_pyramid) as slide, openslide.OpenSlide(str(cmu_pyramid)) as ref:
        assert slide.vendor == "generic-tiff"
        assert [lv.downsample for lv in slide.levels] == [1.0, 2.0, 4.0]
        assert slide.mpp == pytest.approx(0.499, rel=1e-4)
        assert slide.best_level_for_mpp(0.5) == 0
        assert slide.best_level_for_mpp(1.0) == 1  # 0.998 µm/px is fine enough
        assert slide.best_level_for_mpp(1.9) == 1  # level 2 (1.996) would be coarser than asked
        assert slide.best_level_for_mpp(4.0) == 2
        for level, (x, y) in [(0, (512, 768)), (1, (1024, 512)), (2, (1024, 1024))]:
            ours = slide.native.read(x, y, level, (256, 256))
            assert ours is not None
            theirs = np.asarray(ref.read_region((x, y), level, (256, 256)).convert("RGB"))
            assert np.abs(ours.astype(int) - theirs).max() <= 2
        assert slide.native.read(100, 0, 0, (256, 256)) is None  # not aligned: OpenSlide serves it
        assert slide.native.read(2048, 0, 0, (256, 256)) is None  # edge tile (2220 wide)
        edge = slide.read_region(2048, 0, 0, (256, 256))
        assert (edge[:, 200:] == 255).all()  # outside the slide is white


def test_units_fall_back_to_tiff_resolution_then_to_slide_mpp(tmp_path: Path):
    image = np.full((512, 512, 3), 200, np.uint8)
    tagged = tmp_path / "tagged.tif"
    tifffile.imwrite(
        tagged,
        image,
        tile=(256, 256),
        photometric="rgb",
        resolution=(1e4 / 0.25, 1e4 / 0.25),
        resolutionunit="CENTIMETER",
    )
    assert tiff_resolution_mpp(tagged) == pytest.approx((0.25, 0.25))
    with open_slide(tagged) as slide:
        assert slide.mpp == pytest.approx(0.25)
    bare = tmp_path / "bare.tif"
    tifffile.imwrite(bare, image, tile=(256, 256), photometric="rgb", metadata=None)
    with pytest.raises(ReadError, match=r"bare\.tif.*slide_mpp"):
        open_slide(bare)
    with open_slide(bare, slide_mpp=0.3) as slide:
        assert (slide.mpp, slide.mpp_source) == (0.3, "given")


def test_png_is_a_one_level_virtual_slide(tmp_path: Path):
    from PIL import Image

    path = tmp_path / "field.png"
    Image.fromarray(np.full((64, 96, 3), 50, np.uint8)).save(path)
    with pytest.raises(ReadError, match="slide_mpp"):
        open_slide(path)
    with open_slide(path, slide_mpp=0.5) as slide:
        assert slide.vendor == "image" and slide.dimensions == (96, 64)
        assert slide.read_region(0, 0, 0, (8, 8)).tolist() == np.full((8, 8, 3), 50).tolist()
