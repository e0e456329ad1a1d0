"""``spatial_omics/pbmc68k-celltypes``: scanpy's pbmc68k_reduced as expression <-> cell-type text pairs.

The data ship inside every scanpy wheel (``scanpy/datasets/10x_pbmc68k_reduced.h5ad``; read offline). The
generator writes, deterministically:

- ``pbmc68k.h5ad``: the same data in the current anndata layout (700 cells; ``X`` is scaled, ``.raw``
  holds the log-normalised 765 genes, which the recipe reads with
  ``towers.gene_expression.reader_kwargs: {use_raw: true}``);
- ``manifest.csv``: ``id``, ``gene_expression`` (``pbmc68k.h5ad#<barcode>``), ``text`` (a caption of the
  cell type in one of several phrasings, see :mod:`scibind_spatial_omics.celltypes`), ``cell_type``,
  ``split`` (train/eval). The kNN-on-expression baseline computes its PCA from the rows at evaluation.
"""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import numpy as np
from scibind.atomic import atomic_replace
from scibind.errors import ConfigError, DataError

from scibind_spatial_omics.celltypes import describe

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
    source: str | Path | None = None,
) -> Path:
    """Write the PBMC expression <-> cell-type text dataset and return its manifest.

    Args:
        out_dir: Output folder.
        seed: Seed of caption phrasings and of the train/eval split.
        eval_fraction: Fraction of cells in the ``eval`` split.
        source: Another copy of ``10x_pbmc68k_reduced.h5ad`` (default: scanpy's).

    Raises:
        ConfigError: ``eval_fraction`` outside (0, 1).
        DataError: The file is not pbmc68k_reduced (no ``.raw`` or ``obs['bulk_labels']``).
    """
    import anndata as ad
    import pandas as pd
    from scibind.data.splits import assign_splits

    if not 0.0 < eval_fraction < 1.0:
        raise ConfigError(f"need 0 < eval_fraction < 1, got {eval_fraction}")
    src = Path(source) if source is not None else pbmc68k_path()
    with warnings.catch_warnings():
        # The bundled file keeps its neighbour graphs in the pre-0.7 place (.uns); anndata moves them to
        # .obsp on reading and warns. The copy written below is in the current layout, read silently.
        warnings.filterwarnings("ignore", category=FutureWarning, message="Moving element")
        adata = ad.read_h5ad(src)
    if adata.raw is None or "bulk_labels" not in adata.obs:
        raise DataError(f"{src}: expected pbmc68k_reduced with .raw and obs['bulk_labels']")
    ids = [str(i) for i in adata.obs_names]
    cell_types = adata.obs["bulk_labels"].astype(str).to_numpy()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # The recipe reads its log-normalised .raw with reader_kwargs {use_raw: true}.
    atomic_replace(out / H5AD_NAME, lambda tmp: adata.write_h5ad(tmp))
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "id": ids,
            "gene_expression": [f"{H5AD_NAME}#{i}" for i in ids],
            "text": [
                describe(t, int(p)) for t, p in zip(cell_types, rng.integers(4, size=len(ids)), strict=True)
            ],
            "cell_type": cell_types,
            "split": assign_splits(
                ids, None, {"train": 1.0 - eval_fraction, "eval": eval_fraction}, seed=seed
            ),
        }
    )
    path = out / "manifest.csv"
    atomic_replace(path, lambda tmp: frame.to_csv(tmp, index=False))
    return path
