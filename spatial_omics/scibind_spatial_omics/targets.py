"""Numeric targets and baseline features of the evaluation heads: raw expression rows, or prefixed columns.

Heads read the eval records' expression rows straight from the dataset (``EvalContext.view_data``), through
the reader the recipe configured for that view (``towers.<view>.reader_kwargs`` included), and the gene
names and HVG ranking from the matrix file the rows come from (``uns['scibind']`` of files written by
:func:`scibind_spatial_omics.pairs.build_spot_pairs`). :func:`expression_rows` does that.

Contexts built without a dataset (embeddings given alone) fall back to numeric manifest columns with a
prefix, ``hvg:MYL7`` or ``pca:3`` (:func:`prefixed_matrix`); ``build_spot_pairs(target_columns=True)`` still
writes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scibind.errors import ConfigError, DataError
from scibind.evaluate.context import EvalContext

__all__ = [
    "HVG_PREFIX",
    "PCA_PREFIX",
    "ExpressionRows",
    "expression_rows",
    "has_view_data",
    "prefixed_matrix",
]

HVG_PREFIX = "hvg:"
"""Prefix of expression-target columns (one per HVG, in HVG rank order)."""
PCA_PREFIX = "pca:"
"""Prefix of expression-PCA columns (baseline features)."""


@dataclass
class ExpressionRows:
    """The eval records' expression as read by the view's reader.

    Attributes:
        values: ``float64[N, G]``; rows of records without the view are NaN.
        genes: Gene names of the ``G`` columns, or ``None`` when the reader does not say.
        hvgs: The HVGs recorded in the matrix file, in rank order (``[]`` when none).
    """

    values: np.ndarray
    genes: list[str] | None
    hvgs: list[str]


def has_view_data(ctx: EvalContext, view: str) -> bool:
    """Whether ``ctx`` carries a dataset with ``view`` (so :func:`expression_rows` can read it)."""
    return ctx.dataset is not None and view in getattr(ctx.dataset, "views", {})


def _file_panel(ctx: EvalContext, view: str) -> tuple[list[str] | None, list[str]]:
    """Gene names and recorded HVGs from the reader and the matrix files behind ``view`` (best effort)."""
    from scibind_spatial_omics.reader import split_row_ref

    reader = ctx.dataset.views[view].reader
    if not hasattr(reader, "matrix"):
        return None, []
    manifest = ctx.dataset.manifest
    files: list[Path] = []
    for value in manifest.view_values(view):
        if value is None or "#" not in str(value):
            continue
        path = Path(split_row_ref(str(value))[0]).expanduser()
        path = path if path.is_absolute() else Path(manifest.base_dir) / path
        if path not in files:
            files.append(path)
    panels = []
    for path in files:
        matrix, order = reader.matrix(path)
        genes = list(reader.genes) if order is not None else list(matrix.var_names)
        panels.append((genes, list(matrix.provenance.get("hvg", {}).get("genes", []))))
    if not panels:
        return None, []
    genes, hvgs = panels[0]
    if any(p[0] != genes for p in panels[1:]):
        raise DataError(
            f"the {view!r} rows come from {len(files)} files with different gene panels; harmonise them into "
            "one panel first (scibind_spatial_omics.panels.harmonize) or set genes= on the reader"
        )
    return genes, [g for g in hvgs if g in set(genes)]


def expression_rows(ctx: EvalContext, view: str, task: str) -> ExpressionRows:
    """Read every eval record's ``view`` through the dataset (see the module docstring).

    Raises:
        ConfigError: No dataset or no such view.
        DataError: Rows of different lengths, or files with different panels.
    """
    data = ctx.view_data(view, task)
    width = {int(np.asarray(d).reshape(-1).shape[0]) for d in data if d is not None}
    if len(width) > 1:
        raise DataError(
            f"{task}: the {view!r} rows have different lengths {sorted(width)}; harmonise the panels"
        )
    g = width.pop() if width else 0
    values = np.full((len(data), g), np.nan, dtype=np.float64)
    for i, d in enumerate(data):
        if d is not None:
            values[i] = np.asarray(d, dtype=np.float64).reshape(-1)
    genes, hvgs = _file_panel(ctx, view)
    if genes is not None and len(genes) != g:
        genes = None
    return ExpressionRows(values, genes, hvgs if genes is not None else [])


def prefixed_matrix(ctx: EvalContext, prefix: str, task: str) -> tuple[list[str], np.ndarray]:
    """The ``float[N, K]`` matrix of the label columns named ``<prefix>*`` (NaN where missing).

    Columns keep manifest order (the writers put HVGs in rank order).

    Raises:
        ConfigError: No column has the prefix.
        DataError: A value is not a number.
    """
    names = [c for c in ctx.labels if c.startswith(prefix)]
    if not names:
        raise ConfigError(
            f"{task}: no eval dataset to read expression from and the manifest has no '{prefix}*' columns; "
            "evaluate with the dataset (scibind evaluate / train do) or write the columns "
            "(build_spot_pairs(target_columns=True))"
        )
    out = np.full((len(ctx.ids), len(names)), np.nan, dtype=np.float64)
    for j, name in enumerate(names):
        for i, value in enumerate(ctx.labels[name]):
            if value is None:
                continue
            try:
                out[i, j] = float(value)
            except ValueError as exc:
                raise DataError(
                    f"{task}: column {name!r} of record {ctx.ids[i]!r} is not a number: {value!r}"
                ) from exc
    return [n[len(prefix) :] for n in names], out
