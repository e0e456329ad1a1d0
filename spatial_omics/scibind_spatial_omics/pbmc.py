"""``spatial_omics/pbmc68k-celltypes``: scanpy's pbmc68k_reduced as expression <-> cell-type text pairs.

The data ship inside every scanpy wheel (``scanpy/datasets/10x_pbmc68k_reduced.h5ad``; read offline). The
generator writes, deterministically:

- ``pbmc68k.h5ad``: 700 cells x 765 genes, ``X`` = the file's ``.raw`` (log-normalised; its ``X`` is
  scaled), CSR, with ``uns['scibind']`` recording the source;
- ``manifest.csv``: ``id``, ``gene_expression`` (``pbmc68k.h5ad#<barcode>``), ``text`` (a caption of the
  cell type in one of several phrasings, see :mod:`scibind_spatial_omics.celltypes`), ``cell_type``,
  ``split`` (train/eval), and ``pca:0..`` (expression PCA, the features of the kNN-on-expression baseline).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
from scibind.atomic import atomic_replace
from scibind.errors import ConfigError, DataError

from scibind_spatial_omics.celltypes import describe
from scibind_spatial_omics.targets import PCA_PREFIX

__all__ = ["make_pbmc_celltypes", "pbmc68k_path"]

H5AD_NAME = "pbmc68k.h5ad"


def pbmc68k_path() -> Path:
    """The ``10x_pbmc68k_reduced.h5ad`` shipped in the installed scanpy (found without importing scanpy).

    Raises:
        DataError: scanpy is not installed or the file is not in it.
    """
    spec = importlib.util.find_spec("scanpy")
    for base in (spec.submodule_search_locations or []) if spec else []:
        path = Path(base) / "datasets" / "10x_pbmc68k_reduced.h5ad"
        if path.is_file():
            return path
    raise DataError("scanpy's bundled 10x_pbmc68k_reduced.h5ad was not found; pip install 'scanpy>=1.10'")


def make_pbmc_celltypes(
    out_dir: str | Path,
    *,
    seed: int = 0,
    eval_fraction: float = 0.3,
    n_pca: int = 50,
    source: str | Path | None = None,
) -> Path:
    """Write the PBMC expression <-> cell-type text dataset and return its manifest.

    Args:
        out_dir: Output folder.
        seed: Seed of caption phrasings and of the train/eval split.
        eval_fraction: Fraction of cells in the ``eval`` split.
        n_pca: Expression principal components written as ``pca:<i>`` columns.
        source: Another copy of ``10x_pbmc68k_reduced.h5ad`` (default: scanpy's).

    Raises:
        ConfigError: ``eval_fraction`` outside (0, 1) or ``n_pca`` < 1.
    """
    import anndata as ad
    import pandas as pd
    import scipy.sparse as sp
    from scibind.data.splits import assign_splits
    from sklearn.decomposition import PCA

    if not 0.0 < eval_fraction < 1.0 or n_pca < 1:
        raise ConfigError(f"need 0 < eval_fraction < 1 and n_pca >= 1, got {eval_fraction}, {n_pca}")
    src = Path(source) if source is not None else pbmc68k_path()
    original = ad.read_h5ad(src)
    if original.raw is None or "bulk_labels" not in original.obs:
        raise DataError(
            "expected pbmc68k_reduced with .raw and obs['bulk_labels']",
        )
    x = sp.csr_matrix(original.raw.X, dtype=np.float32)
    adata = ad.AnnData(X=x, obs=pd.DataFrame(index=original.obs_names.astype(str)))
    adata.var_names = [str(g) for g in original.raw.var_names]
    adata.obs["cell_type"] = original.obs["bulk_labels"].astype(str).to_numpy()
    adata.uns["scibind"] = json.dumps(
        {
            "source": f"scanpy pbmc68k_reduced ({src.name}), .raw",
            "normalization": {"method": "log-normalised upstream (scanpy pbmc68k_reduced .raw)"},
            "panel": {"name": "pbmc68k_reduced", "mode": "single", "n_genes": int(adata.n_vars)},
        },
        sort_keys=True,
    )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_replace(out / H5AD_NAME, lambda tmp: adata.write_h5ad(tmp))
    rng = np.random.default_rng(seed)
    ids = [str(i) for i in adata.obs_names]
    n_comp = min(n_pca, adata.n_obs - 1, adata.n_vars)
    pcs = PCA(n_components=n_comp, random_state=seed).fit_transform(x.toarray())
    frame = pd.DataFrame(
        {
            "id": ids,
            "gene_expression": [f"{H5AD_NAME}#{i}" for i in ids],
            "text": [
                describe(t, int(p))
                for t, p in zip(adata.obs["cell_type"], rng.integers(4, size=len(ids)), strict=True)
            ],
            "cell_type": adata.obs["cell_type"].to_numpy(),
            "split": assign_splits(
                ids, None, {"train": 1.0 - eval_fraction, "eval": eval_fraction}, seed=seed
            ),
        }
    )
    pca = pd.DataFrame(np.round(pcs, 5), columns=[f"{PCA_PREFIX}{i}" for i in range(n_comp)])
    frame = pd.concat([frame, pca], axis=1)
    path = out / "manifest.csv"
    atomic_replace(path, lambda tmp: frame.to_csv(tmp, index=False))
    return path
