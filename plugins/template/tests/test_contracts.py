"""The template's components pass the testkit contracts (copy this file with the template)."""

from __future__ import annotations

from pathlib import Path

import torch
from scibind_testkit import EncoderContract, PluginContract, ReaderContract


class TestTemplatePlugin(PluginContract):
    plugin_name = "template"


class TestKeyValueReader(ReaderContract):
    reader_name = "template/kv"

    def make_valid_input(self, tmp_path: Path) -> str:
        path = tmp_path / "cell.kv"
        path.write_text("# morphology\narea_um2 = 153.2\neccentricity = 0.41\n", encoding="utf-8")
        return str(path)

    def make_bad_input(self, tmp_path: Path) -> str:
        path = tmp_path / "broken.kv"
        path.write_text("area_um2 = large\n", encoding="utf-8")
        return str(path)


class TestLinearEncoder(EncoderContract):
    encoder_name = "template/linear"
    encoder_kwargs = {"in_dim": 3}

    def make_samples(self, n: int) -> list[torch.Tensor]:
        return [torch.tensor([float(i), 1.0 - i, 0.5 * i]) for i in range(n)]


class TestTinyLinear(TestLinearEncoder):
    encoder_name = "template/tiny-linear"
