"""Xenium-style cell tables + a registered H&E: synthetic folders in the real file formats."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile
from PIL import Image
from scibind.errors import ReadError
from scibind_spatial_omics.matrix import ExpressionMatrix
from scibind_spatial_omics.pairs import build_spot_pairs
from scibind_spatial_omics.synthetic import XENIUM_STAINS, make_synthetic_xenium
from scibind_spatial_omics.xenium import read_alignment, read_xenium


@pytest.fixture(scope="module")
def xenium_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("xenium")
    a = make_synthetic_xenium(root / "xen_a", seed=0)
    b = make_synthetic_xenium(
        root / "xen_b", seed=1, angle_deg=-25.0, cells_format="csv.gz", matrix_format="csv", n_cells=60
    )
    return a, b


def _program_region(counts: np.ndarray) -> np.ndarray:
    """The band whose gene program (genes 3k + r) is highest in each cell."""
    return np.stack([counts[:, r::3].mean(1) for r in range(3)], axis=1).argmax(1)


def test_cells_land_on_their_band(xenium_pair: tuple[Path, Path]):
    folder = xenium_pair[0]
    sample = read_xenium(folder)
    assert sample.mpp_fullres == pytest.approx(0.5)
    # Independent computation from the files: solve M @ (x_px, y_px, 1) = (x_um, y_um, 1).
    matrix = np.loadtxt(folder / "he_imagealignment.csv", delimiter=",")
    cells = pd.read_parquet(folder / "cells.parquet")
    um = np.column_stack([cells["x_centroid"], cells["y_centroid"], np.ones(len(cells))])
    px = np.linalg.solve(matrix, um.T).T
    np.testing.assert_allclose(sample.positions.loc[cells["cell_id"], "pxl_col_in_fullres"], px[:, 0])
    np.testing.assert_allclose(sample.positions.loc[cells["cell_id"], "pxl_row_in_fullres"], px[:, 1])
    image = tifffile.imread(folder / "he_image.ome.tif").astype(float)
    colour = image[np.round(px[:, 1]).astype(int), np.round(px[:, 0]).astype(int)]
    band = np.linalg.norm(colour[:, None, :] - XENIUM_STAINS[None], axis=2).argmin(1)
    adata = sample.read_expression()
    assert adata.n_vars == 30  # the two negative-control probes are dropped
    counts = adata[list(cells["cell_id"])].X.toarray()
    assert (band == _program_region(counts)).mean() > 0.95


def test_cell_patch_pairs_from_two_sections(xenium_pair: tuple[Path, Path], tmp_path: Path):
    manifest = build_spot_pairs(list(xenium_pair), tmp_path, tile_um=8.0, patch_px=8, n_hvg=12)
    frame = pd.read_csv(manifest)
    assert len(frame) == 90 + 60 and set(frame["batch"]) == {"xen_a", "xen_b"}
    assert set(frame.groupby("batch")["split"].nunique()) == {1}  # whole sections per split
    matrix = ExpressionMatrix.open(tmp_path / "expression.h5ad")
    record = matrix.provenance["patches"]["samples"]["xen_b"]
    assert record["mpp_image"] == pytest.approx(0.5) and record["n_cells_off_image"] == 0
    assert len(matrix.provenance["hvg"]["genes"]) == 12
    # Each cell's patch has the stain of the band its expression program says it came from.
    raw = np.stack([matrix.row(i) for i in range(matrix.n_obs)])
    region = _program_region(np.expm1(raw)[:, [matrix.var_names.index(f"XG{j:03d}") for j in range(30)]])
    patches = np.stack([np.asarray(Image.open(tmp_path / p)).reshape(-1, 3).mean(0) for p in frame["image"]])
    nearest = np.linalg.norm(patches[:, None, :] - XENIUM_STAINS[None], axis=2).argmin(1)
    order = [matrix.obs_names.index(i) for i in frame["id"].astype(str)]
    assert (nearest == region[order]).mean() > 0.9


def test_alignment_errors_name_the_file(xenium_pair: tuple[Path, Path], tmp_path: Path):
    folder = tmp_path / "xen"
    shutil.copytree(xenium_pair[0], folder)
    alignment = folder / "he_imagealignment.csv"
    inverse = np.linalg.inv(read_alignment(alignment))
    alignment.write_text("\n".join(",".join(map(str, r)) for r in inverse), encoding="utf-8")
    with pytest.raises(ReadError, match=r"outside.*he_imagealignment\.csv|he_imagealignment\.csv.*outside"):
        read_xenium(folder)
    alignment.write_text("1,0\n0,1\n", encoding="utf-8")
    with pytest.raises(ReadError, match="3x3"):
        read_xenium(folder)
    alignment.unlink()
    with pytest.raises(ReadError, match="alignment"):
        read_xenium(folder)
