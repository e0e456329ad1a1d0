"""The core's own components pass the testkit contracts, like any third-party plugin's would."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from scibind_testkit import EncoderContract, ObjectiveContract, PluginContract, ReaderContract


class TestCorePlugin(PluginContract):
    plugin_name = "core"


class TestVectorReader(ReaderContract):
    reader_name = "core/vector"

    def make_valid_input(self, tmp_path: Path) -> str:
        path = tmp_path / "features.npy"
        np.save(path, np.arange(6, dtype=np.float32))
        return str(path)

    def make_bad_input(self, tmp_path: Path) -> str:
        path = tmp_path / "broken.npy"
        path.write_bytes(b"\x93NUMPY not really an array")
        return str(path)


class TestInlineVectorReader(ReaderContract):
    reader_name = "core/vector"

    def make_valid_input(self, tmp_path: Path) -> str:
        return "[0.5, 1.5, -2.0]"

    def make_bad_input(self, tmp_path: Path) -> str:
        return '[1.0, "two"]'


class TestTextReader(ReaderContract):
    reader_name = "core/text"

    def make_valid_input(self, tmp_path: Path) -> str:
        path = tmp_path / "caption.txt"
        path.write_text("a chest X-ray, posteroanterior view\n", encoding="utf-8")
        return str(path)

    def make_bad_input(self, tmp_path: Path) -> str:
        path = tmp_path / "latin1.txt"
        path.write_bytes("caf\xe9 au lait".encode("latin-1"))
        return str(path)


class TestTinyMLP(EncoderContract):
    encoder_name = "core/tiny-mlp"
    encoder_kwargs = {"in_dim": 8}

    def make_samples(self, n: int) -> list[torch.Tensor]:
        gen = torch.Generator().manual_seed(0)
        return [torch.randn(8, generator=gen) for _ in range(n)]


class TestTinyText(EncoderContract):
    encoder_name = "core/tiny-text"

    def make_samples(self, n: int) -> list[str]:
        words = ["nucleus", "mitochondria", "cytoplasm", "membrane", "ribosome", "vesicle"]
        return [f"{words[i % len(words)]} stained sample {i}" for i in range(n)]


class TestClip(ObjectiveContract):
    objective_name = "core/clip"


class TestSigLip(ObjectiveContract):
    objective_name = "core/siglip"


class TestClipThreeViews(ObjectiveContract):
    objective_name = "core/clip"
    views = ("text", "image", "vector")
    mask_equals_subset = False  # pairs not involving the masked view keep every row
