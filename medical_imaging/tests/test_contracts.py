"""Every component of the plugin passes the testkit contracts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from scibind_medical_imaging.writers import write_nifti
from scibind_testkit import EncoderContract, PluginContract, ReaderContract

from .conftest import LAS_AFFINE, ramp_volume


class TestMedicalImagingPlugin(PluginContract):
    plugin_name = "medical_imaging"


class TestVolumeReader(ReaderContract):
    reader_name = "medical_imaging/volume"
    reader_kwargs = {"spacing_mm": [2.0, 2.0, 2.0], "roi_size": [8, 8, 8]}

    def make_valid_input(self, tmp_path: Path) -> str:
        return str(write_nifti(ramp_volume(), LAS_AFFINE, tmp_path / "ramp.nii.gz"))

    def make_bad_input(self, tmp_path: Path) -> str:
        path = tmp_path / "corrupt.nii"
        path.write_bytes(b"\x00" * 400)
        return str(path)


class TestRadiographReader(ReaderContract):
    reader_name = "medical_imaging/radiograph"
    reader_kwargs = {"size": [16, 16]}

    def make_valid_input(self, tmp_path: Path) -> str:
        from PIL import Image

        path = tmp_path / "cxr.png"
        Image.fromarray(np.arange(600, dtype=np.uint8).reshape(20, 30)).save(path)
        return str(path)

    def make_bad_input(self, tmp_path: Path) -> str:
        path = tmp_path / "truncated.png"
        path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 10)
        return str(path)


class TestTinyEncoder(EncoderContract):
    encoder_name = "medical_imaging/tiny"

    def make_samples(self, n: int) -> list[torch.Tensor]:
        gen = torch.Generator().manual_seed(0)
        return [torch.rand(1, 16, 16, 16, generator=gen) for _ in range(n)]


class TestTinyViT(EncoderContract):
    encoder_name = "medical_imaging/tiny-vit"
    batch_size = 2

    def make_samples(self, n: int) -> list[torch.Tensor]:
        gen = torch.Generator().manual_seed(0)
        return [torch.rand(1, 32, 32, 32, generator=gen) for _ in range(n)]


class TestTiny2D(EncoderContract):
    encoder_name = "medical_imaging/tiny-2d"

    def make_samples(self, n: int) -> list[torch.Tensor]:
        gen = torch.Generator().manual_seed(0)
        return [torch.rand(1, 32, 32, generator=gen) for _ in range(n)]


class TestTinyViT2D(TestTiny2D):
    encoder_name = "medical_imaging/tiny-vit-2d"
