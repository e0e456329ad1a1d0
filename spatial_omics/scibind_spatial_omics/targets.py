"""Numeric targets that travel in manifest columns: ``<prefix><name>`` columns parsed into a matrix.

Evaluation heads only see embeddings and manifest label columns (as text). Expression targets (the top
HVGs of each spot) and baseline features (PCA of expression) are therefore written as numeric columns
with a prefix, ``hvg:MYL7`` or ``pca:3``, by :func:`scibind_spatial_omics.pairs.build_spot_pairs` and the
dataset generators, and parsed back here.
"""

from __future__ import annotations

import numpy as np
from scibind.errors import ConfigError, DataError
from scibind.evaluate.context import EvalContext

__all__ = ["HVG_PREFIX", "PCA_PREFIX", "prefixed_matrix"]

HVG_PREFIX = "hvg:"
"""Prefix of expression-target columns (one per HVG, in HVG rank order)."""
PCA_PREFIX = "pca:"
"""Prefix of expression-PCA columns (baseline features)."""


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
            f"{task}: the eval manifest has no '{prefix}*' columns; build it with "
            "scibind_spatial_omics.pairs.build_spot_pairs (which writes them) or set prefix="
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
