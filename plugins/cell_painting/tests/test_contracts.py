"""The Cell Painting components pass the testkit contracts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from scibind.evaluate.context import EvalContext
from scibind_testkit import EncoderContract, HeadContract, ObjectiveContract, PluginContract, ReaderContract


class TestCellPaintingPlugin(PluginContract):
    plugin_name = "cell_painting"


class TestInfoLOOB(ObjectiveContract):
    objective_name = "cell_painting/infoloob"


class TestInfoLOOBPlain(ObjectiveContract):
    objective_name = "cell_painting/infoloob"
    objective_kwargs = {"hopfield_beta": None, "learn_temperature": True}


class TestFieldReader(ReaderContract):
    reader_name = "cell_painting/field"

    def make_valid_input(self, tmp_path: Path) -> str:
        import tifffile

        rng = np.random.default_rng(0)
        path = tmp_path / "field.ome.tif"
        stack = rng.integers(0, 4000, size=(5, 16, 16)).astype(np.uint16)
        names = ["DNA", "ER", "RNA", "AGP", "Mito"]
        tifffile.imwrite(path, stack, metadata={"axes": "CYX", "Channel": {"Name": names}})
        return str(path)

    def make_bad_input(self, tmp_path: Path) -> str:
        path = tmp_path / "truncated.ome.tif"
        path.write_bytes(b"II*\x00garbage")
        return str(path)


def _fields(n: int, channels: int = 5, size: int = 16) -> list[dict[str, torch.Tensor]]:
    gen = torch.Generator().manual_seed(0)
    return [
        {
            "pixels": torch.rand(channels - i % 2, size, size, generator=gen),
            "channels": torch.arange(channels - i % 2),
        }
        for i in range(n)
    ]


class TestChannelwiseEncoder(EncoderContract):
    encoder_name = "cell_painting/channelwise"
    encoder_kwargs = {"token_dim": 16, "width": 8, "depth": 1, "n_heads": 2, "pool_px": 2}

    def make_samples(self, n: int) -> list[dict[str, torch.Tensor]]:
        return _fields(n)


class TestTinyChannelwise(TestChannelwiseEncoder):
    encoder_name = "cell_painting/tiny"
    encoder_kwargs = {}


class TestProfileEncoder(EncoderContract):
    encoder_name = "cell_painting/profile-mlp"
    encoder_kwargs = {"in_dim": 12, "embed_dim": 256}

    def make_samples(self, n: int) -> list[torch.Tensor]:
        return [torch.linspace(-1, 1, 12) * (i + 1) for i in range(n)]


class TestTinyProfileEncoder(TestProfileEncoder):
    encoder_name = "cell_painting/tiny-profile-mlp"
    encoder_kwargs = {"in_dim": 12}


def _context() -> EvalContext:
    gen = torch.Generator().manual_seed(0)
    labels = [f"cpd{i % 4}" if i % 8 else "DMSO" for i in range(32)]
    centres = torch.randn(5, 8, generator=gen)
    codes = [0 if v == "DMSO" else 1 + int(v[-1]) for v in labels]
    x = torch.nn.functional.normalize(centres[codes] + 0.5 * torch.randn(32, 8, generator=gen), dim=1)
    return EvalContext(
        ids=[f"r{i}" for i in range(32)],
        embeddings={"cells": x},
        present={"cells": torch.ones(32, dtype=torch.bool)},
        labels={"perturbation": labels, "plate": [f"P{i % 2}" for i in range(32)]},
    )


class TestMAPHead(HeadContract):
    head_name = "cell_painting/map"
    head_kwargs = {"label": "perturbation", "view": "cells", "controls": {"perturbation": "DMSO"}}

    def make_head_input(self) -> EvalContext:
        return _context()


class TestBatchEffectsHead(HeadContract):
    head_name = "cell_painting/batch-effects"
    head_kwargs = {"view": "cells", "batch": "plate", "label": "perturbation"}

    def make_head_input(self) -> EvalContext:
        return _context()
