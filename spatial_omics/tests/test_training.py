"""End to end: the demo recipe, the Visium recipe on synthetic donors, and a tiny model on real spots."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from scibind.train import load_recipe
from scibind.train.trainer import train
from scibind_spatial_omics.pairs import build_spot_pairs


def test_pbmc_demo_beats_chance(tmp_path: Path):
    recipe = load_recipe("spatial_omics/pbmc-celltypes", ["train.max_steps=40", "train.checkpoint_every=40"])
    train(recipe, tmp_path / "run")
    metrics = json.loads((tmp_path / "run/eval/metrics.json").read_text())
    n_classes = metrics["zero_shot/gene_expression/n_classes"]
    assert n_classes == 10
    # Chance is 1/10 (0.34 always guessing the largest class, Dendritic).
    assert metrics["zero_shot/gene_expression/accuracy"] > 0.45
    assert metrics["knn/expression_pca/cell_type/accuracy"] > 0.5


def test_visium_recipe_on_synthetic_donors(tmp_path: Path):
    recipe = load_recipe(
        "spatial_omics/visium-spots",
        [
            "train.max_steps=30",
            "train.checkpoint_every=30",
            "train.batch_size=64",
            "data.dataset_kwargs.grid=10",
            "data.dataset_kwargs.patch_px=16",
            "towers.image.encoder_kwargs={in_channels: 3, embed_dim: 64, width: 8, depth: 2}",
        ],
    )
    train(recipe, tmp_path / "run")
    m = json.loads((tmp_path / "run/eval/metrics.json").read_text())
    n = m["image->gene_expression/n"]
    assert m["image->gene_expression/R@5"] > 2 * 5 / n
    assert m["gene_expression->image/R@5"] > 2 * 5 / n
    assert m["expression_prediction/image/ridge/pearson_top50"] > 0.1
    assert "batch/image/ilisi" in m and m["batch/image/n_batches"] == 2


def test_tiny_model_on_real_mouse_brain_spots(spatial_dir: Path, tmp_path: Path):
    folder = spatial_dir / "visium_v1_adult_mouse_brain_crop"
    manifest = build_spot_pairs(
        {"brain": folder / "test_data.h5ad"},
        tmp_path / "data",
        fullres_images={"brain": folder / "test_img.jpg"},
        patch_px=24,
        n_hvg=20,
    )
    recipe = {
        "embed_dim": 16,
        "towers": {
            "image": {"encoder": "core/tiny-cnn", "encoder_kwargs": {"in_channels": 3}},
            "gene_expression": {"encoder": "spatial_omics/tiny", "encoder_kwargs": {"n_genes": 1999}},
        },
        "data": {"train": str(manifest)},
        "train": {"batch_size": 16, "max_steps": 6, "checkpoint_every": 6, "lr": 0.003},
        "eval": {
            "tasks": [
                {"name": "core/retrieval"},
                {"name": "spatial_omics/expression-prediction", "n_pca": 8, "top_k": 20},
            ]
        },
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    train(load_recipe(path), tmp_path / "run")
    m = json.loads((tmp_path / "run/eval/metrics.json").read_text())
    assert m["image->gene_expression/n"] == pytest.approx(15, abs=3)
    assert -1.0 <= m["expression_prediction/image/ridge/pearson_top20"] <= 1.0
