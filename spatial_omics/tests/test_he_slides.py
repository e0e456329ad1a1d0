"""Full-resolution H&E through the pathology plugin's slide reader, and the plain fallback."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scibind.errors import ConfigError, ReadError
from scibind_spatial_omics.he_slides import open_he_slide, patch_level, pathology_available
from scibind_spatial_omics.pairs import build_spot_pairs
from scibind_spatial_omics.synthetic import HIRES_SCALEF, make_synthetic_visium
from scibind_spatial_omics.visium import crop_patch, load_spot_image

pytest.importorskip("scibind_pathology")

SVS_MPP = 0.499


@pytest.fixture(scope="module")
def svs(shared_data_dir: Path) -> Path:
    """The real Aperio slide (JPEG tiles, one level, 2220 x 2967)."""
    return shared_data_dir / "pathology" / "CMU-1-Small-Region.svs"


@pytest.fixture(scope="module")
def svs_level0(svs: Path) -> np.ndarray:
    import tifffile

    return np.asarray(tifffile.imread(svs))


@pytest.fixture(scope="module")
def pyramid(tmp_path_factory: pytest.TempPathFactory, svs_level0: np.ndarray) -> Path:
    """A 3-level tiled pyramidal TIFF (JPEG tiles) made from a 1024 x 1024 region of the slide."""
    from scibind_pathology.synthetic import write_pyramid

    path = tmp_path_factory.mktemp("pyramid") / "he.tif"
    return write_pyramid(path, svs_level0[1000:2024, 600:1624], SVS_MPP, levels=3, tile=256)


def test_svs_patches_agree_between_readers(svs: Path, svs_level0: np.ndarray):
    slide_image = load_spot_image(svs, "fullres", 1.0, mpp_um=SVS_MPP, he_reader="auto")
    plain_image = load_spot_image(svs, "fullres", 1.0, mpp_um=SVS_MPP, he_reader="plain")
    assert slide_image.reader == "pathology" and plain_image.reader == "plain"
    assert slide_image.slide.vendor == "aperio" and slide_image.pixels is None
    assert slide_image.shape == plain_image.shape == (2967, 2220)
    assert not slide_image.is_blank
    # interior, near the top-left corner (white fill), near the bottom-right edge; 1:1 and box-shrunk
    for centre, size_px, out_px in [
        ((1500.5, 900.2), 64.0, 64),
        ((10.0, 20.0), 100.0, 100),
        ((2960.0, 2210.0), 224.0, 32),
    ]:
        a = crop_patch(slide_image, centre, size_px, out_px)
        b = crop_patch(plain_image, centre, size_px, out_px)
        assert a.shape == (out_px, out_px, 3)
        np.testing.assert_array_equal(a, b)
    # independent of crop_patch: the 1:1 patch is the level-0 pixels around the centre
    patch = crop_patch(slide_image, (1500.5, 900.2), 64.0, 64)
    np.testing.assert_array_equal(patch, svs_level0[1468:1532, 868:932])
    assert patch.mean() < 220  # tissue, not glass
    corner = crop_patch(slide_image, (10.0, 20.0), 100.0, 100)
    assert (corner[:40, :30] == 255).all() and not (corner[60:, 60:] == 255).all()
    slide_image.slide.close()


def test_pyramid_patches_read_a_coarser_level(pyramid: Path, request: pytest.FixtureRequest):
    slide_image = load_spot_image(pyramid, "fullres", 1.0, mpp_um=1.0, he_reader="auto")
    plain_image = load_spot_image(pyramid, "fullres", 1.0, mpp_um=1.0, he_reader="plain")
    slide = slide_image.slide
    request.addfinalizer(slide.close)
    assert slide.vendor == "generic-tiff" and [lv.downsample for lv in slide.levels] == [1.0, 2.0, 4.0]
    assert slide.mpp == pytest.approx(SVS_MPP, rel=1e-3) and slide.mpp_source != "given"  # from the file
    # 2 % slack: 63 px -> 32 px (downsample 1.97) may read level 1
    assert [patch_level(slide, side, 32) for side in (32, 62, 63, 128, 500)] == [0, 0, 1, 2, 2]
    # full resolution: the same decoded pixels either way
    np.testing.assert_array_equal(
        crop_patch(slide_image, (500.0, 400.0), 48.0, 48), crop_patch(plain_image, (500.0, 400.0), 48.0, 48)
    )
    # 128 level-0 px -> 32 px: the slide reader decodes level 2 (stored 4x smaller), the plain reader
    # box-filters level 0; both are the same tissue up to the JPEG of the stored level and, for a corner
    # off the level's grid, a sub-pixel shift (measured: 2-10 grey levels; another place: 80-95)
    for centre in [(300.0, 300.0), (700.0, 200.0), (512.0, 900.0), (302.0, 301.0)]:
        a = crop_patch(slide_image, centre, 128.0, 32).astype(float)
        b = crop_patch(plain_image, centre, 128.0, 32).astype(float)
        other = crop_patch(plain_image, (centre[0], 1023.0 - centre[1]), 128.0, 32).astype(float)
        assert np.abs(a - b).mean() < min(12.0, np.abs(a - other).mean() / 5)


def test_auto_falls_back_to_the_plain_reader(tmp_path: Path, svs: Path, svs_level0: np.ndarray, monkeypatch):
    import tifffile

    png = tmp_path / "he.png"
    Image.fromarray(svs_level0[:200, :300]).save(png)
    stripped = tmp_path / "stripped.tif"  # not tiled: OpenSlide does not read it as a slide
    tifffile.imwrite(stripped, svs_level0[:200, :300], photometric="rgb")
    for path in (png, stripped):
        image = load_spot_image(path, "fullres", 1.0, mpp_um=SVS_MPP)
        assert image.reader == "plain" and image.shape == (200, 300)
        np.testing.assert_array_equal(image.pixels, svs_level0[:200, :300])
    with pytest.raises(ReadError, match=r"stripped\.tif"):
        open_he_slide(stripped, mpp_um=SVS_MPP, reader="pathology")
    with pytest.raises(ConfigError, match="he_reader"):
        open_he_slide(svs, mpp_um=SVS_MPP, reader="openslide")
    with pytest.raises(ConfigError, match="he_reader"):
        build_spot_pairs({"s": tmp_path}, tmp_path / "out", he_reader="openslide")
    # without the pathology plugin: the SVS is read whole with tifffile, and asking for it is an error
    monkeypatch.setitem(sys.modules, "scibind_pathology.slide", None)
    assert not pathology_available()
    image = load_spot_image(svs, "fullres", 1.0, mpp_um=SVS_MPP)
    assert image.reader == "plain" and image.shape == (2967, 2220)
    with pytest.raises(ConfigError, match=r"pip install -e \./pathology"):
        open_he_slide(svs, mpp_um=SVS_MPP, reader="pathology")


def test_spot_pairs_from_a_pyramidal_fullres_image(tmp_path: Path):
    from scibind_pathology.synthetic import write_pyramid

    (folder,) = make_synthetic_visium(tmp_path / "raw", n_samples=1, grid=4, n_genes=30)
    hires = Image.open(folder / "spatial" / "tissue_hires_image.png")
    scale = round(1 / HIRES_SCALEF)
    fullres = np.asarray(hires.resize((hires.width * scale, hires.height * scale), Image.Resampling.NEAREST))
    tif = write_pyramid(tmp_path / "fullres.tif", fullres, 55.0 / 89.0, levels=3, tile=128)
    patches = {}
    for reader in ("auto", "plain"):
        out = tmp_path / reader
        build_spot_pairs(
            {"d0": folder},
            out,
            fullres_images={"d0": tif},
            image="fullres",
            tile_um=110.0,
            patch_px=32,
            n_hvg=10,
            he_reader=reader,
        )
        record = json.loads(__import__("anndata").read_h5ad(out / "expression.h5ad").uns["scibind"])
        geometry = record["patches"]["samples"]["d0"]
        patches[reader] = np.stack(
            [np.asarray(Image.open(p), dtype=float) for p in sorted((out / "patches" / "d0").glob("*.png"))]
        )
        if reader == "auto":
            # 110 µm = 178 level-0 px -> 32 px: downsample 5.6, so level 2 (4x) is decoded
            assert geometry["he_reader"] == "pathology" and geometry["slide_level_read"] == 2
            assert geometry["slide_mpp"] == pytest.approx(55.0 / 89.0, rel=1e-3)
        else:
            assert geometry["he_reader"] == "plain" and "slide_level_read" not in geometry
    assert patches["auto"].shape == patches["plain"].shape == (16, 32, 32, 3)
    # the synthetic stain is per-pixel noise around a region colour: the JPEG of the stored level changes
    # the noise (6-11 grey levels per pixel, measured) but not the colour of the spot's region
    colour = {reader: p.mean(axis=(1, 2)) for reader, p in patches.items()}
    np.testing.assert_allclose(colour["auto"], colour["plain"], atol=3.0)
    assert np.abs(colour["auto"] - colour["plain"][::-1]).max() > 20  # other spots: other regions
    diff = np.abs(patches["auto"] - patches["plain"]).mean(axis=(1, 2, 3))
    assert (diff < np.abs(patches["auto"] - patches["plain"][::-1]).mean(axis=(1, 2, 3))).all()
