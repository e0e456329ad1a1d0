"""Real Visium files: the scanpy heart subset (Space Ranger layout) and the squidpy mouse-brain crop."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from scibind.data.dataset import PairedDataset
from scibind.data.manifest import read_manifest
from scibind.errors import ReadError
from scibind.evaluate.context import EvalContext
from scibind_spatial_omics.baseline import ExpressionKNNTask
from scibind_spatial_omics.matrix import ExpressionMatrix
from scibind_spatial_omics.pairs import build_spot_pairs
from scibind_spatial_omics.prediction import ExpressionPredictionTask
from scibind_spatial_omics.reader import ExpressionReader
from scibind_spatial_omics.visium import crop_patch, read_visium, visium_from_h5ad


@pytest.fixture(scope="module")
def heart(spatial_dir: Path) -> Path:
    return spatial_dir / "visium_v1_human_heart_subset"


def test_reads_space_ranger_layout(heart: Path):
    sample = read_visium(heart)
    assert len(sample.positions) == 4992
    assert sample.scalefactors["tissue_lowres_scalef"] == pytest.approx(0.045004502)
    assert sample.mpp_fullres == pytest.approx(55.0 / 89.42751063343188)
    # The hires image is a blank placeholder: "auto" falls back to the real lowres H&E.
    assert sample.image("hires").is_blank
    assert sample.image("auto").name == "lowres"


def test_space_ranger_2_parquet_positions(heart: Path, tmp_path: Path):
    """Space Ranger >= 2 writes spatial/tissue_positions.parquet with named columns; it wins over the CSV."""
    outs = tmp_path / "outs"
    shutil.copytree(heart, outs)
    old = pd.read_csv(outs / "spatial/tissue_positions_list.csv", header=None, dtype={0: str})
    old.columns = [
        "barcode",
        "in_tissue",
        "array_row",
        "array_col",
        "pxl_row_in_fullres",
        "pxl_col_in_fullres",
    ]
    (outs / "spatial/tissue_positions_list.csv").unlink()
    old.to_parquet(outs / "spatial/tissue_positions.parquet", index=False)
    sample = read_visium(outs)
    reference = read_visium(heart)
    pd.testing.assert_frame_equal(sample.positions, reference.positions, check_dtype=False)
    assert (
        len(
            build_spot_pairs([outs], tmp_path / "pairs", patch_px=8, n_hvg=5, in_tissue_only=False)
            .read_text()
            .splitlines()
        )
        == 101
    )
    old.drop(columns=["pxl_col_in_fullres"]).to_parquet(outs / "spatial/tissue_positions.parquet")
    with pytest.raises(
        ReadError,
        match=r"tissue_positions\.parquet.*pxl_col_in_fullres|pxl_col_in_fullres.*tissue_positions\.parquet",
    ):
        read_visium(outs)


def test_10x_matrix_rows_match_h5py(heart: Path):
    path = heart / "filtered_feature_bc_matrix.h5"
    matrix = ExpressionMatrix.open(path)
    assert (matrix.n_obs, matrix.n_vars) == (100, 100)
    assert matrix.gene_ids[0].startswith("ENSG")
    with h5py.File(path) as f:
        g = f["matrix"]
        dense = np.zeros((100, 100))
        indptr = g["indptr"][()]
        for col in range(100):  # CSC over barcodes: column = barcode
            dense[col, g["indices"][indptr[col] : indptr[col + 1]]] = g["data"][indptr[col] : indptr[col + 1]]
    got = np.stack([matrix.row(i) for i in range(100)])
    np.testing.assert_array_equal(got, dense)
    assert got.sum() > 656  # 656 non-zero counts of 1..9
    reader = ExpressionReader()
    sample = reader.read(f"{path}#{matrix.obs_names[7]}", record_id="s7")
    np.testing.assert_array_equal(sample.data.numpy(), dense[7])


def test_spots_land_on_tissue(heart: Path):
    """Independent check: lowres pixel = full-res pixel x scale factor, read straight from the files."""
    scalef = json.loads((heart / "spatial/scalefactors_json.json").read_text())["tissue_lowres_scalef"]
    pos = pd.read_csv(heart / "spatial/tissue_positions_list.csv", header=None)
    img = np.asarray(Image.open(heart / "spatial/tissue_lowres_image.png").convert("RGB")).astype(float)
    rows = np.round(pos[4].to_numpy() * scalef).astype(int)
    cols = np.round(pos[5].to_numpy() * scalef).astype(int)
    saturation = img.max(2) - img.min(2)  # H&E tissue is coloured, glass is grey/white
    on = saturation[rows, cols]
    in_tissue = pos[1].to_numpy() == 1
    assert on[in_tissue].mean() > 2 * on[~in_tissue].mean()
    # The plugin's spot pixels agree with the independent computation.
    sample = read_visium(heart)
    image = sample.image("lowres")
    ours = sample.spot_pixels(image, list(pos[0]))
    np.testing.assert_allclose(ours[:, 0], pos[4].to_numpy() * scalef)


def test_build_pairs_from_heart(heart: Path, tmp_path: Path):
    manifest = build_spot_pairs([heart], tmp_path, tile_um=110.0, patch_px=16, n_hvg=10, in_tissue_only=False)
    frame = pd.read_csv(manifest)
    assert len(frame) == 100
    assert {"id", "image", "gene_expression", "batch", "split"} <= set(frame.columns)
    assert not [c for c in frame.columns if c.startswith("hvg:")]  # heads read expression.h5ad instead
    patch = np.asarray(Image.open(tmp_path / frame["image"][0]))
    assert patch.shape == (16, 16, 3)
    matrix = ExpressionMatrix.open(tmp_path / "expression.h5ad")
    record = matrix.provenance
    assert record["normalization"]["method"].startswith("scanpy")
    assert record["patches"]["samples"]["visium_v1_human_heart_subset"]["image"] == "lowres"
    # 110 µm at the lowres µm/px (~13.7) is ~8 px: upsampling is recorded.
    assert record["patches"]["samples"]["visium_v1_human_heart_subset"]["upsampled"] is True
    # log1p(normalize_total) rows: the sum of expm1 is the target sum.
    row = matrix.row(0)
    assert np.expm1(row).sum() == pytest.approx(1e4, rel=1e-3)
    # The expression-prediction head reads its targets through the dataset: the recorded HVGs, in rank order.
    dataset = PairedDataset(read_manifest(manifest), {"gene_expression": "gene_expression"})
    n = len(dataset)
    ctx = EvalContext(
        ids=dataset.ids,
        embeddings={"image": torch.nn.functional.normalize(torch.randn(n, 4), dim=1)},
        present={"image": torch.ones(n, dtype=torch.bool)},
        dataset=dataset,
    )
    names, targets = ExpressionPredictionTask(folds=3).targets(ctx)
    assert names == record["hvg"]["genes"] and targets.shape == (100, 10)
    column = matrix.var_names.index(names[0])
    np.testing.assert_allclose(targets[:, 0], [matrix.row(i)[column] for i in range(100)], rtol=1e-6)
    features = ExpressionKNNTask("batch", n_pca=5).features(ctx)
    assert features.shape == (100, 5) and np.isfinite(features).all()


def test_missing_scalefactors_and_outside_spots(heart: Path, tmp_path: Path):
    broken = tmp_path / "outs"
    shutil.copytree(heart, broken)
    (broken / "spatial/scalefactors_json.json").unlink()
    with pytest.raises(ReadError, match=r"scalefactors_json\.json"):
        read_visium(broken)
    image = read_visium(heart).image("lowres")
    with pytest.raises(ReadError, match="outside"):
        crop_patch(image, (5000.0, 10.0), 8.0, 8)


def test_mouse_brain_h5ad_pairs(spatial_dir: Path, tmp_path: Path):
    folder = spatial_dir / "visium_v1_adult_mouse_brain_crop"
    sample = visium_from_h5ad(folder / "test_data.h5ad", fullres_image=folder / "test_img.jpg")
    image = sample.image("fullres")
    assert image.pixels.shape == (1717, 950, 3)
    centres = sample.spot_pixels(image)
    assert (centres[:, 0] < 1717).all() and (centres[:, 1] < 950).all()
    manifest = build_spot_pairs(
        {"brain": folder / "test_data.h5ad"},
        tmp_path,
        fullres_images={"brain": folder / "test_img.jpg"},
        patch_px=24,
        n_hvg=20,
    )
    frame = pd.read_csv(manifest)
    assert len(frame) == 49
    record = ExpressionMatrix.open(tmp_path / "expression.h5ad").provenance
    assert record["normalization"] is None  # X is already log-normalised, so it is not normalised again
    patches = np.stack([np.asarray(Image.open(tmp_path / p)) for p in frame["image"]]).astype(float)
    # Spot patches are tissue, not glass: darker than white and coloured.
    assert patches.mean() < 200 and (patches.max(-1) - patches.min(-1)).mean() > 10
