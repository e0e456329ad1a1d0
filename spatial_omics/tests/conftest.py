"""Shared helpers of the spatial_omics tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


def write_h5ad(path: Path, x, obs_names=None, var_names=None, **var_columns):
    """Write a small AnnData file with ``X = x`` (dense array or scipy matrix)."""
    import anndata as ad
    import pandas as pd

    n, g = x.shape
    obs = pd.DataFrame(index=obs_names or [f"cell{i}" for i in range(n)])
    var = pd.DataFrame(index=var_names or [f"G{j}" for j in range(g)])
    for key, values in var_columns.items():
        var[key] = values
    ad.AnnData(X=x, obs=obs, var=var).write_h5ad(path)
    return path


@pytest.fixture
def small_h5ad(tmp_path: Path) -> Path:
    """A 6 x 5 dense h5ad with distinct rows."""
    x = np.arange(30, dtype=np.float32).reshape(6, 5)
    return write_h5ad(tmp_path / "small.h5ad", x)


@pytest.fixture(scope="session")
def spatial_dir(shared_data_dir: Path) -> Path:
    """The shared spatial sample folder."""
    return shared_data_dir / "spatial"
