"""The plugin's components pass the testkit contracts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from scibind.evaluate.context import EvalContext
from scibind_testkit import EncoderContract, HeadContract, PluginContract, ReaderContract

from .conftest import write_h5ad


class TestSpatialOmicsPlugin(PluginContract):
    plugin_name = "spatial_omics"


class TestExpressionReader(ReaderContract):
    reader_name = "spatial_omics/expression"

    def make_valid_input(self, tmp_path: Path) -> str:
        write_h5ad(tmp_path / "cells.h5ad", np.eye(3, 4, dtype=np.float32))
        return str(tmp_path / "cells.h5ad") + "#cell1"

    def make_bad_input(self, tmp_path: Path) -> str:
        (tmp_path / "broken.h5ad").write_text("not hdf5", encoding="utf-8")
        return str(tmp_path / "broken.h5ad") + "#cell0"


def _panels(n: int, genes: int = 12) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    rows = [torch.rand(genes, generator=gen) * 5 for _ in range(n)]
    rows[-1][: genes // 3] = float("nan")  # a record from a smaller panel
    return rows


class TestGeneMLP(EncoderContract):
    encoder_name = "spatial_omics/gene-mlp"
    encoder_kwargs = {"n_genes": 12, "embed_dim": 256, "hidden_dim": 32, "dropout": 0.0}

    def make_samples(self, n: int) -> list[torch.Tensor]:
        return _panels(n)


class TestTinyGeneMLP(TestGeneMLP):
    encoder_name = "spatial_omics/tiny-gene-mlp"
    encoder_kwargs = {"n_genes": 12}


class TestGeneSet(TestGeneMLP):
    encoder_name = "spatial_omics/gene-set"
    encoder_kwargs = {"n_genes": 12, "dim": 16, "n_heads": 2, "n_latents": 2, "n_layers": 1}


class TestTinyGeneSet(TestGeneMLP):
    encoder_name = "spatial_omics/tiny"
    encoder_kwargs = {"n_genes": 12}


def _context(n: int = 40, seed: int = 0) -> EvalContext:
    """Image embeddings that carry the targets, two batches, PCA columns that carry the label."""
    rng = np.random.default_rng(seed)
    latent = rng.normal(size=(n, 4))
    image = torch.nn.functional.normalize(
        torch.tensor(latent @ rng.normal(size=(4, 8)), dtype=torch.float32), dim=1
    )
    expr = torch.nn.functional.normalize(
        image + 0.1 * torch.randn(n, 8, generator=torch.Generator().manual_seed(1)), dim=1
    )
    targets = latent @ rng.normal(size=(4, 3))
    labels: dict[str, list[str | None]] = {f"hvg:G{j}": [f"{v:.5f}" for v in targets[:, j]] for j in range(3)}
    labels["cell_type"] = ["a" if v > 0 else "b" for v in latent[:, 0]]
    labels["pca:0"] = [f"{v:.5f}" for v in latent[:, 0]]
    labels["pca:1"] = [f"{v:.5f}" for v in latent[:, 1]]
    labels["batch"] = ["d0" if i % 2 else "d1" for i in range(n)]
    ones = torch.ones(n, dtype=torch.bool)
    return EvalContext(
        ids=[f"r{i}" for i in range(n)],
        embeddings={"image": image, "gene_expression": expr},
        present={"image": ones, "gene_expression": ones.clone()},
        labels=labels,
    )


class TestExpressionPredictionHead(HeadContract):
    head_name = "spatial_omics/expression-prediction"
    head_kwargs = {"view": "image", "n_pca": 4, "top_k": 2}

    def make_head_input(self) -> EvalContext:
        return _context()


class TestBatchMixingHead(HeadContract):
    head_name = "spatial_omics/batch-mixing"
    head_kwargs = {"batch": "batch", "k": 5}

    def make_head_input(self) -> EvalContext:
        return _context()


class TestExpressionKNNHead(HeadContract):
    head_name = "spatial_omics/expression-knn"
    head_kwargs = {"label": "cell_type", "k": 3}

    def make_head_input(self) -> EvalContext:
        return _context()
