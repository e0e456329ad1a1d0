"""Xenium ``transcripts.parquet`` (one row per decoded molecule) counted into a cell x gene matrix.

Columns used (Xenium Onboard Analysis names): ``cell_id`` (``"UNASSIGNED"``, or ``-1`` in old integer
files, for molecules outside every cell), ``feature_name`` (gene, or a control: ``NegControlProbe_*``,
``NegControlCodeword_*``, ``UnassignedCodeword_*``, ``DeprecatedCodeword_*``, ``BLANK_*``, ``Intergenic*``)
and ``qv`` (Phred-scaled decoding quality); ``is_gene`` is used too when the file has it. Xenium's own
``cell_feature_matrix`` counts molecules with ``qv >= 20`` assigned to a cell, genes only: that is what
:func:`count_transcripts` computes. Old files store ``cell_id``/``feature_name`` as binary; they are
decoded. The file is read in row batches of the needed columns only, so files larger than memory work.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scibind.errors import ReadError

__all__ = ["CONTROL_PREFIXES", "MIN_QV", "count_transcripts"]

MIN_QV = 20.0
"""Xenium's quality threshold for counting a molecule (Q20)."""

CONTROL_PREFIXES = (
    "NegControlProbe_",
    "NegControlCodeword_",
    "UnassignedCodeword_",
    "DeprecatedCodeword_",
    "BLANK_",
    "Intergenic",
)
"""``feature_name`` prefixes of control probes and codewords (not genes)."""

_UNASSIGNED = {"UNASSIGNED", "-1", ""}
_REQUIRED = ("cell_id", "feature_name", "qv")


def _strings(column: Any) -> np.ndarray:
    """A pyarrow column (string, binary, dictionary or integer) as an object array of ``str``."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    if pa.types.is_binary(column.type) or pa.types.is_large_binary(column.type):
        column = column.cast(pa.string())
    elif not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        column = pc.cast(column, pa.string())
    return np.asarray(column.to_numpy(zero_copy_only=False), dtype=object)


def count_transcripts(
    path: str | Path,
    *,
    cells: Sequence[str] | None = None,
    min_qv: float = MIN_QV,
    batch_rows: int = 1 << 20,
) -> Any:
    """Count a ``transcripts.parquet`` into an AnnData (cells x genes, CSR ``float32`` counts).

    Args:
        path: The transcripts file.
        cells: Row order (e.g. the ``cell_id`` of ``cells.parquet``); cells without molecules get zero rows.
            Default: every cell with at least one counted molecule, sorted.
        min_qv: Molecules with ``qv`` below it are not counted.
        batch_rows: Rows read per batch.

    Returns:
        AnnData with ``uns['xenium_transcripts']``: molecules read, counted, and dropped as low-quality,
        unassigned or control, and ``min_qv``.

    Raises:
        ReadError: Unreadable file, a missing column, or molecules of cells absent from ``cells``.
    """
    import anndata as ad
    import pandas as pd
    import pyarrow.parquet as pq
    import scipy.sparse as sp

    path = Path(path)
    try:
        handle = pq.ParquetFile(path)
    except FileNotFoundError as exc:
        raise ReadError("transcripts file not found", path=path) from exc
    except Exception as exc:
        raise ReadError(f"cannot read as parquet ({type(exc).__name__}: {exc})", path=path) from exc
    names = set(handle.schema_arrow.names)
    missing = [c for c in _REQUIRED if c not in names]
    if missing:
        raise ReadError(
            f"the transcripts table lacks {missing}; Xenium writes cell_id, feature_name and qv",
            path=path,
        )
    columns = [*_REQUIRED, *(["is_gene"] if "is_gene" in names else [])]
    cell_codes: dict[str, int] = {str(c): i for i, c in enumerate(cells)} if cells is not None else {}
    fixed = cells is not None
    gene_codes: dict[str, int] = {}
    keys: list[np.ndarray] = []
    tally = {"read": 0, "low_qv": 0, "unassigned": 0, "control": 0, "unknown_cell": 0}
    unknown: list[str] = []
    for batch in handle.iter_batches(batch_size=batch_rows, columns=columns):
        n = batch.num_rows
        tally["read"] += n
        qv = np.asarray(batch.column("qv").to_numpy(zero_copy_only=False), dtype=np.float64)
        cell = _strings(batch.column("cell_id"))
        feature = _strings(batch.column("feature_name"))
        good = qv >= min_qv
        tally["low_qv"] += int((~good).sum())
        assigned = ~pd.Series(cell).isin(_UNASSIGNED).to_numpy()
        tally["unassigned"] += int((good & ~assigned).sum())
        gene = ~pd.Series(feature).str.startswith(CONTROL_PREFIXES).to_numpy()
        if "is_gene" in columns:
            gene &= np.asarray(batch.column("is_gene").to_numpy(zero_copy_only=False), dtype=bool)
        tally["control"] += int((good & assigned & ~gene).sum())
        keep = good & assigned & gene
        cell, feature = cell[keep], feature[keep]
        cell_inverse, cell_uniques = pd.factorize(cell)
        gene_inverse, gene_uniques = pd.factorize(feature)
        if not fixed:
            for c in cell_uniques:
                cell_codes.setdefault(c, len(cell_codes))
        cell_map = np.array([cell_codes.get(c, -1) for c in cell_uniques], dtype=np.int64)
        gene_map = np.array([gene_codes.setdefault(g, len(gene_codes)) for g in gene_uniques], dtype=np.int64)
        rows = cell_map[cell_inverse] if len(cell) else np.zeros(0, dtype=np.int64)
        if (rows < 0).any():
            tally["unknown_cell"] += int((rows < 0).sum())
            unknown.extend(c for c, m in zip(cell_uniques, cell_map, strict=True) if m < 0)
            keep_known = rows >= 0
            rows, gene_inverse = rows[keep_known], gene_inverse[keep_known]
        cols = gene_map[gene_inverse] if len(rows) else np.zeros(0, dtype=np.int64)
        keys.append((rows << 32) | cols)
    if unknown:
        raise ReadError(
            f"{tally['unknown_cell']} counted molecules belong to {len(set(unknown))} cells absent from the "
            f"cell table (e.g. {sorted(set(unknown))[:3]}); the transcripts and cells files come from "
            "different runs",
            path=path,
        )
    pairs, counts = np.unique(np.concatenate(keys) if keys else np.zeros(0, np.int64), return_counts=True)
    genes = sorted(gene_codes)  # columns in gene-name order
    order = np.empty(len(gene_codes), dtype=np.int64)
    order[[gene_codes[g] for g in genes]] = np.arange(len(genes))
    cell_names = list(cell_codes)
    row_order = np.arange(len(cell_names))
    if not fixed:  # rows in cell-id order
        cell_names = sorted(cell_codes)
        row_order = np.empty(len(cell_codes), dtype=np.int64)
        row_order[[cell_codes[c] for c in cell_names]] = np.arange(len(cell_names))
    matrix = sp.csr_matrix(
        (counts.astype(np.float32), (row_order[pairs >> 32], order[pairs & 0xFFFFFFFF])),
        shape=(len(cell_names), len(genes)),
    )
    adata = ad.AnnData(
        X=matrix, obs=pd.DataFrame(index=pd.Index(cell_names)), var=pd.DataFrame(index=pd.Index(genes))
    )
    adata.uns["xenium_transcripts"] = {
        **tally,
        "counted": int(counts.sum()),
        "min_qv": float(min_qv),
        "file": path.name,
    }
    return adata
