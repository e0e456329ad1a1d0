"""Every pathology component passes the testkit contracts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from scibind_pathology.synthetic import write_synthetic_slide as synthetic_slide
from scibind_testkit import EncoderContract, HeadContract, PluginContract, ReaderContract


class TestPathologyPlugin(PluginContract):
    plugin_name = "pathology"


class TestWSIReader(ReaderContract):
    reader_name = "pathology/wsi"
    reader_kwargs = {"mpp": 1.0, "tile_size": 32, "encoder": "pathology/tiny", "min_area_um2": 1000.0}

    def make_valid_input(self, tmp_path: Path) -> str:
        return str(synthetic_slide(tmp_path))

    def make_bad_input(self, tmp_path: Path) -> str:
        path = tmp_path / "empty.svs"
        path.write_bytes(b"")
        return str(path)


class TestTileReader(ReaderContract):
    reader_name = "pathology/tile"
    reader_kwargs = {"mpp": 1.0, "tile_size": 64}

    def make_valid_input(self, tmp_path: Path) -> dict[str, Any]:
        return {"slide": str(synthetic_slide(tmp_path)), "x": 128, "y": 256}

    def make_bad_input(self, tmp_path: Path) -> str:
        path = tmp_path / "notes.svs"
        path.write_text("this is a text file, not a slide\n", encoding="utf-8")
        return str(path)


def _tiles(n: int, size: int = 32) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return [torch.rand(3, size, size, generator=gen) * (0.5 + i / n) for i in range(n)]


class TestTinyTileEncoder(EncoderContract):
    encoder_name = "pathology/tiny"

    def make_samples(self, n: int) -> list[torch.Tensor]:
        return _tiles(n)


class TestTileCNN(TestTinyTileEncoder):
    encoder_name = "pathology/cnn"
    encoder_kwargs = {"width": 8, "depth": 1}


class TestTileViT(TestTinyTileEncoder):
    encoder_name = "pathology/vit"
    encoder_kwargs = {"image_size": 32, "patch_size": 8, "width": 32, "depth": 1, "heads": 2}


class TestTinyViT(TestTinyTileEncoder):
    encoder_name = "pathology/tiny-vit"


def _bags(n: int, dim: int = 32) -> list[dict[str, torch.Tensor]]:
    gen = torch.Generator().manual_seed(0)
    return [
        {
            "features": torch.randn(5 + 3 * i, dim, generator=gen),
            "coords": torch.zeros(5 + 3 * i, 2, dtype=torch.int64),
        }
        for i in range(n)
    ]


class TestABMIL(EncoderContract):
    encoder_name = "pathology/abmil"
    encoder_kwargs = {"in_dim": 32}

    def make_samples(self, n: int) -> list[dict[str, torch.Tensor]]:
        return _bags(n)


class TestTinyABMIL(TestABMIL):
    encoder_name = "pathology/tiny-abmil"


class TestPrototype(TestABMIL):
    encoder_name = "pathology/prototype"


class TestTinyPrototype(TestABMIL):
    encoder_name = "pathology/tiny-prototype"


class TestABMILClassifier(HeadContract):
    head_name = "pathology/abmil-classifier"
    head_kwargs = {"label": "dx", "folds": 2, "epochs": 5}

    def make_head_input(self) -> dict[str, Any]:
        rng = np.random.default_rng(0)
        features = [rng.normal(i % 2, 1.0, (6, 8)).astype(np.float32) for i in range(8)]
        return {"features": features, "labels": ["a" if i % 2 else "b" for i in range(8)]}
