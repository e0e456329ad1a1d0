"""The ``core/synthetic-pairs`` dataset: two vector views of one shared latent, with labels and groups.

Each record has a latent ``z`` drawn around one of ``n_classes`` cluster centres. ``view_a`` and ``view_b``
are two different fixed random nonlinear maps of ``z`` (``tanh(z @ W1) @ W2``) plus Gaussian noise, so a model
that aligns the two views can retrieve one from the other and the class is predictable from either.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from scibind.atomic import atomic_replace
from scibind.data.splits import assign_splits
from scibind.errors import ConfigError

__all__ = ["FORMATS", "make_synthetic_pairs"]

FORMATS: tuple[str, ...] = ("parquet", "csv", "jsonl")
CENTRE_SCALE = 2.0
"""Spread of the class centres relative to the unit within-class spread of the latent."""


CAPTION_TEMPLATES = (
    "a sample of {}",
    "a record from {}",
    "measurements taken from {}",
    "this one belongs to {}",
)


def _random_map(rng: np.random.Generator, latent_dim: int, out_dim: int) -> tuple[np.ndarray, np.ndarray]:
    hidden = max(2 * latent_dim, out_dim)
    # Scaled so the tanh input has unit variance: the map is nonlinear without saturating.
    w1 = rng.standard_normal((latent_dim, hidden)) / np.sqrt(latent_dim * (CENTRE_SCALE**2 + 1.0))
    w2 = rng.standard_normal((hidden, out_dim)) / np.sqrt(hidden)
    return w1, w2


def _vectors_with_gaps(values: np.ndarray, absent: np.ndarray) -> list[list[float] | None]:
    return [None if gone else row for row, gone in zip(values.tolist(), absent.tolist(), strict=True)]


def _write_rows(rows: dict[str, list], tmp: Path, fmt: str) -> None:
    if fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        vector = pa.list_(pa.float32())
        table = pa.table(
            {k: pa.array(v, type=vector if k.startswith("view_") else pa.string()) for k, v in rows.items()}
        )
        pq.write_table(table, tmp)
        return
    n = len(rows["id"])
    with open(tmp, "w", encoding="utf-8", newline="") as handle:
        if fmt == "jsonl":
            for i in range(n):
                handle.write(json.dumps({k: v[i] for k, v in rows.items()}) + "\n")
            return
        import csv

        writer = csv.writer(handle)
        writer.writerow(list(rows))
        for i in range(n):
            writer.writerow(
                [
                    "" if v[i] is None else (json.dumps(v[i]) if isinstance(v[i], list) else v[i])
                    for v in rows.values()
                ]
            )


def make_synthetic_pairs(
    out_dir: str | Path,
    *,
    n: int = 2000,
    dim_a: int = 32,
    dim_b: int = 48,
    latent_dim: int = 8,
    n_classes: int = 5,
    n_groups: int = 100,
    noise: float = 0.1,
    seed: int = 0,
    missing_fraction: float = 0.0,
    captions: bool = False,
    format: str = "parquet",
) -> Path:
    """Write the synthetic paired dataset and return its manifest path.

    The manifest has columns ``id`` (``rec_00000``...), ``view_a`` and ``view_b`` (float32 vectors),
    ``label`` (``class_0``...), ``group`` (``group_000``...) and ``split`` (``train``/``eval``, 80/20 and
    group-safe). The output is identical for identical arguments.

    Args:
        out_dir: Folder to write ``manifest.<format>`` into (created if needed).
        n: Number of records.
        dim_a: Length of ``view_a`` vectors.
        dim_b: Length of ``view_b`` vectors.
        latent_dim: Dimension of the shared latent.
        n_classes: Number of latent clusters (label classes).
        n_groups: Number of groups (records are assigned to groups uniformly at random).
        noise: Standard deviation of the Gaussian noise added to each view.
        seed: Seed of every random draw.
        missing_fraction: Fraction of records with one of the two views (chosen at random) missing; a record
            never loses both.
        captions: Also write a ``text`` column: a short caption naming the record's class in one of several
            phrasings (for text towers, zero-shot classification and multi-positive training).
        format: ``"parquet"`` (list columns), ``"csv"`` (JSON array cells) or ``"jsonl"``.

    Returns:
        Path of the written manifest.

    Raises:
        ConfigError: An argument is out of range.
    """
    if format not in FORMATS:
        raise ConfigError(f"format must be one of {FORMATS}, got {format!r}")
    if min(n, dim_a, dim_b, latent_dim, n_classes, n_groups) < 1:
        raise ConfigError("n, dim_a, dim_b, latent_dim, n_classes and n_groups must all be >= 1")
    if not 0.0 <= missing_fraction <= 1.0 or noise < 0:
        raise ConfigError(f"need 0 <= missing_fraction <= 1 and noise >= 0, got {missing_fraction}, {noise}")
    rng = np.random.default_rng(seed)
    centres = CENTRE_SCALE * rng.standard_normal((n_classes, latent_dim))
    classes = rng.integers(n_classes, size=n)
    latent = centres[classes] + rng.standard_normal((n, latent_dim))
    views = {}
    for name, dim in (("view_a", dim_a), ("view_b", dim_b)):
        w1, w2 = _random_map(rng, latent_dim, dim)
        clean = np.tanh(latent @ w1) @ w2
        views[name] = (clean + noise * rng.standard_normal(clean.shape)).astype(np.float32)
    group_idx = rng.integers(n_groups, size=n)
    has_gap = rng.random(n) < missing_fraction
    drop_b = rng.random(n) < 0.5
    ids = [f"rec_{i:05d}" for i in range(n)]
    width = len(str(n_groups - 1))
    groups = [f"group_{g:0{width}d}" for g in group_idx]
    rows: dict[str, list] = {
        "id": ids,
        "view_a": _vectors_with_gaps(views["view_a"], has_gap & ~drop_b),
        "view_b": _vectors_with_gaps(views["view_b"], has_gap & drop_b),
        "label": [f"class_{c}" for c in classes],
        "group": groups,
        "split": assign_splits(ids, groups, seed=seed),
    }
    if captions:
        phrasing = rng.integers(len(CAPTION_TEMPLATES), size=n)
        rows["text"] = [
            CAPTION_TEMPLATES[t].format(f"class_{c}") for t, c in zip(phrasing, classes, strict=True)
        ]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"manifest.{format}"
    atomic_replace(path, lambda tmp: _write_rows(rows, tmp, format))
    return path
