"""Feature caches: keyed by slide, tiling and encoder; reused when nothing changed, never stale."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import scibind
import torch
from safetensors.torch import save_file
from scibind.errors import ConfigError
from scibind_pathology.encoders import pretrained
from scibind_pathology.features import extract_features, load_features
from scibind_pathology.slide import open_slide
from scibind_pathology.tiling import TilingConfig, plan_tiles, read_tile

TILING = TilingConfig(mpp=1.0, tile_size=64, min_tissue=0.25)


def test_cache_is_reused_and_keyed(cmu_slide: Path, tmp_path: Path):
    slide = tmp_path / cmu_slide.name
    shutil.copy(cmu_slide, slide)
    cache = tmp_path / "cache"
    first = extract_features(slide, cache, tiling=TILING, encoder="pathology/tiny")
    stamp = first.stat().st_mtime_ns
    assert extract_features(slide, cache, tiling=TILING, encoder="pathology/tiny") == first
    assert first.stat().st_mtime_ns == stamp  # reused, not rewritten
    other_encoder = extract_features(
        slide, cache, tiling=TILING, encoder="pathology/tiny", encoder_kwargs={"seed": 1}
    )
    other_tiling = extract_features(
        slide, cache, tiling=TilingConfig(mpp=2.0, tile_size=64), encoder="pathology/tiny"
    )
    os.utime(slide, ns=(stamp + 10**9, stamp + 10**9))  # the slide changed on disk
    touched = extract_features(slide, cache, tiling=TILING, encoder="pathology/tiny")
    assert len({first, other_encoder, other_tiling, touched}) == 4


def test_cached_features_equal_encoding_the_tiles_directly(cmu_slide: Path, tmp_path: Path):
    bag = load_features(extract_features(cmu_slide, tmp_path, tiling=TILING, encoder="pathology/tiny"))
    encoder = scibind.create_encoder("pathology/tiny").eval()
    with open_slide(cmu_slide) as slide:
        grid = plan_tiles(slide, TILING)  # without a mask: a superset of the cached tiles
        index = {tuple(c): i for i, c in enumerate(grid.coords.tolist())}
        rows = [index[tuple(c)] for c in bag.coords.tolist()]
        tiles = np.stack([read_tile(slide, grid, *grid.coords[i]) for i in rows[:6]])
    with torch.no_grad():
        direct = encoder(torch.from_numpy(tiles).permute(0, 3, 1, 2).float() / 255.0).numpy()
    np.testing.assert_allclose(bag.features[:6], direct, atol=1e-5)
    assert bag.attrs["patch_size_level0"] == round(64 / 0.499) and bag.attrs["encoder"] == "pathology/tiny"


def test_pretrained_backbone_from_local_safetensors(tmp_path: Path):
    torch.manual_seed(0)
    source = scibind.create_encoder("pathology/tiny-vit").eval()
    folder = tmp_path / "my-vit"
    folder.mkdir()
    save_file(
        {k: v.contiguous() for k, v in source.backbone.state_dict().items()},
        str(folder / "model.safetensors"),
    )
    config = {
        "architecture": "pathology/vit",
        "kwargs": {"embed_dim": 32, "image_size": 32, "patch_size": 8, "width": 32, "depth": 1, "heads": 2},
        "mean": [0.5, 0.5, 0.5],
        "std": [0.25, 0.25, 0.25],
        "input_mpp": 1.0,
    }
    (folder / "config.json").write_text(json.dumps(config))
    loaded = pretrained(folder).eval()
    assert loaded.embed_dim == 32 and loaded.input_mpp == 1.0 and loaded.input_size == 32
    tiles = torch.rand(2, 3, 64, 64)  # resized to 32 px by the declared preprocessing
    expected = source.backbone(
        (torch.nn.functional.interpolate(tiles, size=(32, 32), mode="bilinear", antialias=True) - 0.5) / 0.25
    )
    torch.testing.assert_close(loaded(tiles), expected)
    with pytest.raises(ConfigError, match=r"expects tiles at 1\.0"):
        extract_features(
            tmp_path / "x.svs",
            tmp_path,
            tiling=TilingConfig(mpp=0.5),
            encoder="pathology/pretrained",
            encoder_kwargs={"path": str(folder)},
        )
