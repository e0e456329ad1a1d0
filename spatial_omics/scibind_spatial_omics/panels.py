"""Harmonising gene panels across samples: gene ids, union/intersection, normalisation, HVGs.

:func:`harmonize` takes several AnnData objects (one per sample or batch) and returns one AnnData on a common
panel. Every choice is written to ``uns['scibind']`` (a JSON string), so the artifact says how it was made:

- **gene ids**: genes are keyed by Ensembl id (``var['gene_ids']``, or var names that look like ``ENS...``)
  or by symbol. Samples that carry both teach the symbol <-> id map used for samples that carry one.
- **panel**: ``union`` keeps every gene and records which genes each cell's sample measured in
  ``obsm['gene_present']`` (rows read back with NaN for unmeasured genes); ``intersection`` keeps genes
  measured in every sample.
- **normalisation**: scanpy ``normalize_total(target_sum)`` then ``log1p`` on counts, per sample, before
  merging; skip it for data that is already log-normalised.
- **HVGs**: ``highly_variable_genes`` (seurat flavour, by batch) on genes measured in every sample; the
  top genes are in ``var['highly_variable']`` and ``var['hvg_rank']`` and, with ``subset_hvg``, the panel.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
from scibind.errors import ConfigError, DataError

__all__ = ["ENSEMBL_PATTERN", "gene_keys", "harmonize", "provenance"]

ENSEMBL_PATTERN = re.compile(r"^ENS[A-Z]*G\d{6,}(\.\d+)?$")
"""Ensembl gene ids (human ``ENSG``, mouse ``ENSMUSG``, ...), optionally versioned."""


def _is_ensembl(names: Sequence[str]) -> bool:
    return len(names) > 0 and sum(bool(ENSEMBL_PATTERN.match(n)) for n in names) > 0.9 * len(names)


def gene_keys(
    var_names: Sequence[str],
    gene_ids: Sequence[str] | None,
    id_type: Literal["symbol", "ensembl"],
    symbol_to_id: Mapping[str, str],
) -> list[str | None]:
    """Each gene's key in the ``id_type`` namespace (``None`` when it cannot be mapped).

    Ensembl versions (``ENSG...1.5``) are dropped so versioned and unversioned files agree.
    """
    id_to_symbol = {v: k for k, v in symbol_to_id.items()}
    names = [str(n) for n in var_names]
    ids = [str(i).split(".")[0] for i in gene_ids] if gene_ids is not None else None
    if ids is None and _is_ensembl(names):
        ids, names = [n.split(".")[0] for n in names], [id_to_symbol.get(n.split(".")[0], "") for n in names]
    if id_type == "ensembl":
        if ids is not None:
            return list(ids)
        return [symbol_to_id.get(n) for n in names]
    return [n or None for n in names]


def _var_ids(adata: Any) -> list[str] | None:
    for column in ("gene_ids", "gene_id", "ensembl_id"):
        if column in adata.var:
            return [str(v) for v in adata.var[column]]
    return None


def provenance(adata: Any) -> dict[str, Any]:
    """The ``uns['scibind']`` record of a harmonised AnnData (``{}`` when absent)."""
    raw = adata.uns.get("scibind")
    return json.loads(raw) if isinstance(raw, str) else {}


def harmonize(
    samples: Mapping[str, Any],
    *,
    panel: Literal["union", "intersection"] = "intersection",
    id_type: Literal["symbol", "ensembl"] = "symbol",
    normalize: bool = True,
    target_sum: float = 1e4,
    n_hvg: int | None = None,
    subset_hvg: bool = False,
    gene_map: Mapping[str, str] | None = None,
    batch_key: str = "batch",
) -> Any:
    """Merge samples onto one gene panel.

    Args:
        samples: Sample (batch) name -> AnnData with counts (or log-normalised values and
            ``normalize=False``) in ``X``.
        panel: ``"union"`` (absent genes masked) or ``"intersection"``.
        id_type: Key genes by ``"symbol"`` or ``"ensembl"`` id.
        normalize: Apply ``normalize_total(target_sum)`` + ``log1p`` to each sample.
        target_sum: Counts per cell after ``normalize_total``.
        n_hvg: Mark this many highly variable genes (``None`` = none).
        subset_hvg: Keep only the HVGs (needs ``n_hvg``).
        gene_map: Extra symbol -> Ensembl id pairs (e.g. from a GTF), on top of those learnt from samples.
        batch_key: The ``obs`` column naming each cell's sample.

    Returns:
        An AnnData: ``X`` float32 (CSR), ``obs[batch_key]``, ``var_names`` = gene keys, ``var['symbol']`` /
        ``var['gene_ids']`` when known, ``obsm['gene_present']`` for union panels with gaps, and
        ``uns['scibind']`` (JSON) recording every step.

    Raises:
        ConfigError: Bad options.
        DataError: No sample, or no shared gene (the message lists each sample's first genes and how they are
            named, the usual cause being symbols in one file and Ensembl ids in another without a map).
    """
    import anndata as ad
    import scipy.sparse as sp

    if panel not in ("union", "intersection"):
        raise ConfigError(f"panel must be 'union' or 'intersection', got {panel!r}")
    if id_type not in ("symbol", "ensembl"):
        raise ConfigError(f"id_type must be 'symbol' or 'ensembl', got {id_type!r}")
    if subset_hvg and not n_hvg:
        raise ConfigError("subset_hvg=True needs n_hvg")
    if not samples:
        raise DataError("harmonize() got no samples")
    symbol_to_id: dict[str, str] = dict(gene_map or {})
    for adata in samples.values():
        ids = _var_ids(adata)
        if ids is not None:
            for symbol, gid in zip(adata.var_names, ids, strict=True):
                symbol_to_id.setdefault(str(symbol), gid.split(".")[0])
    keyed: dict[str, tuple[Any, list[int], list[str]]] = {}
    record: dict[str, Any] = {"samples": {}}
    for name, adata in samples.items():
        keys = gene_keys(list(map(str, adata.var_names)), _var_ids(adata), id_type, symbol_to_id)
        seen: set[str] = set()
        columns, kept = [], []
        for j, key in enumerate(keys):
            if key is not None and key not in seen:
                seen.add(key)
                columns.append(j)
                kept.append(key)
        x = adata.X
        x = sp.csr_matrix(x, dtype=np.float32) if not sp.issparse(x) else x.tocsr().astype(np.float32)
        x = x[:, columns]
        if normalize:
            x = _normalize_log1p(x, target_sum)
        keyed[name] = (x, columns, kept)
        record["samples"][name] = {
            "n_obs": int(adata.n_obs),
            "n_vars_in": int(adata.n_vars),
            "n_unmapped": int(sum(k is None for k in keys)),
            "n_duplicates": int(sum(k is not None for k in keys) - len(kept)),
        }
    sets = [set(kept) for _, _, kept in keyed.values()]
    shared = set.intersection(*sets)
    if not shared:
        described = "; ".join(
            f"{n}: {', '.join(map(str, a.var_names[:3]))}" for n, a in list(samples.items())[:4]
        )
        raise DataError(
            f"the samples share no gene when keyed by {id_type} ({described}); "
            "mixing symbols and Ensembl ids "
            "needs var['gene_ids'] in one sample or gene_map="
        )
    first_order = [g for _, _, kept in keyed.values() for g in kept]
    genes = list(dict.fromkeys(g for g in first_order if panel == "union" or g in shared))
    position = {g: i for i, g in enumerate(genes)}
    blocks, present_rows, batches = [], [], []
    for name, (x, _, kept) in keyed.items():
        target = [position.get(g, -1) for g in kept]
        keep = [i for i, t in enumerate(target) if t >= 0]
        sub = x[:, keep].tocoo()
        cols = np.asarray(target, dtype=np.int64)[keep][sub.col]
        blocks.append(sp.csr_matrix((sub.data, (sub.row, cols)), shape=(x.shape[0], len(genes))))
        mask = np.zeros(len(genes), dtype=bool)
        mask[[position[g] for g in kept if g in position]] = True
        present_rows.append(np.broadcast_to(mask, (x.shape[0], len(genes))))
        batches += [name] * x.shape[0]
    merged = ad.AnnData(X=sp.vstack(blocks).tocsr().astype(np.float32))
    merged.obs_names = [f"{n}" for s in samples.values() for n in s.obs_names]
    if not merged.obs_names.is_unique:
        merged.obs_names = [f"{b}:{n}" for b, s in samples.items() for n in s.obs_names]
    merged.obs[batch_key] = batches
    merged.var_names = genes
    id_to_symbol = {v: k for k, v in symbol_to_id.items()}
    if id_type == "ensembl":
        merged.var["gene_ids"] = genes
        merged.var["symbol"] = [id_to_symbol.get(g, "") for g in genes]
    else:
        merged.var["symbol"] = genes
        merged.var["gene_ids"] = [symbol_to_id.get(g, "") for g in genes]
    present = np.vstack(present_rows)
    if not present.all():
        merged.obsm["gene_present"] = present
    record.update(
        panel={"mode": panel, "id_type": id_type, "n_genes": len(genes), "n_shared": len(shared)},
        normalization=(
            {"method": "scanpy.pp.normalize_total+log1p", "target_sum": target_sum} if normalize else None
        ),
        batch_key=batch_key,
    )
    if n_hvg:
        record["hvg"] = _mark_hvgs(merged, [g for g in genes if g in shared], n_hvg, batch_key, len(samples))
        if subset_hvg:
            merged = merged[:, merged.var["highly_variable"].to_numpy()].copy()
            record["panel"]["n_genes"] = int(merged.n_vars)
            record["panel"]["subset_hvg"] = True
    merged.uns["scibind"] = json.dumps(record, sort_keys=True)
    return merged


def _normalize_log1p(x: Any, target_sum: float) -> Any:
    import anndata as ad
    import scanpy as sc

    tmp = ad.AnnData(X=x)
    sc.pp.normalize_total(tmp, target_sum=target_sum)
    sc.pp.log1p(tmp)
    return tmp.X.tocsr().astype(np.float32)


def _mark_hvgs(merged: Any, shared: list[str], n_hvg: int, batch_key: str, n_batches: int) -> dict[str, Any]:
    import scanpy as sc

    sub = merged[:, shared].copy()
    n_top = min(int(n_hvg), len(shared))
    by_batch = batch_key if n_batches > 1 else None
    sc.pp.highly_variable_genes(sub, n_top_genes=n_top, flavor="seurat", batch_key=by_batch)
    column = "dispersions_norm"
    scores = sub.var[column].fillna(-np.inf).to_numpy()
    if by_batch is not None and "highly_variable_nbatches" in sub.var:
        scores = sub.var["highly_variable_nbatches"].to_numpy() * 1e6 + np.nan_to_num(scores, neginf=-1e5)
    order = np.argsort(-scores, kind="stable")[:n_top]
    top = [shared[i] for i in order]
    rank = {g: r for r, g in enumerate(top)}
    merged.var["highly_variable"] = [g in rank for g in merged.var_names]
    merged.var["hvg_rank"] = [rank.get(g, -1) for g in merged.var_names]
    return {
        "method": "scanpy.pp.highly_variable_genes",
        "flavor": "seurat",
        "n_top_genes": n_top,
        "by_batch": bool(by_batch),
        "genes": top,
    }
