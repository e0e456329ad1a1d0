"""Mean average precision of profile retrieval, following the copairs / cytominer-eval protocol.

Each query ranks candidates by cosine similarity. Positives share the query's label (and, when asked,
differ from it in ``diffby`` columns such as plate or well); negatives have another label, or are the
controls only. A query's average precision (AP) is the mean, over its positives, of the precision at the
positive's rank. A label's mAP is the mean AP of its queries; its p-value is the fraction of null mAPs
(random rankings of the same queries) at least as large, and the *fraction retrieved* is the share of
labels with p < 0.05 (copairs' "fraction retrieved", Kalinin et al. 2024).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["MAPResult", "average_precision", "mean_average_precision", "null_average_precision"]


@dataclass
class MAPResult:
    """Outcome of :func:`mean_average_precision`.

    Attributes:
        labels: The labels scored (with at least one query that has a positive).
        map: ``float[L]`` mAP per label.
        p_values: ``float[L]`` permutation p-value per label.
        null_map: ``float[L]`` mean mAP of random rankings per label (chance).
        query_ap: Query index -> its AP.
    """

    labels: list[str]
    map: np.ndarray
    p_values: np.ndarray
    null_map: np.ndarray
    query_ap: dict[int, float]

    @property
    def mean(self) -> float:
        """MAP averaged over labels (``nan`` when none)."""
        return float(self.map.mean()) if len(self.map) else float("nan")

    @property
    def chance(self) -> float:
        """Mean null mAP over labels."""
        return float(self.null_map.mean()) if len(self.null_map) else float("nan")

    @property
    def fraction_retrieved(self) -> float:
        """Share of labels whose mAP beats random rankings at p < 0.05."""
        return float((self.p_values < 0.05).mean()) if len(self.p_values) else float("nan")


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and value != value)


def average_precision(scores: np.ndarray, positive: np.ndarray) -> float:
    """AP of one ranking.

    Args:
        scores: ``float[n]`` similarity of each candidate (higher ranks first; ties keep input order).
        positive: ``bool[n]`` which candidates are positives (at least one).
    """
    order = np.argsort(-scores, kind="stable")
    hits = positive[order]
    ranks = np.flatnonzero(hits) + 1
    return float(np.mean(np.arange(1, len(ranks) + 1) / ranks))


def null_average_precision(n_positive: int, n_total: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """APs of ``size`` random rankings of ``n_total`` candidates of which ``n_positive`` are positive."""
    keys = rng.random((size, n_total))
    ranks = np.sort(np.argsort(keys, axis=1)[:, :n_positive], axis=1) + 1
    return (np.arange(1, n_positive + 1)[None, :] / ranks).mean(axis=1)


def mean_average_precision(
    queries: np.ndarray,
    labels: Sequence[str | None],
    *,
    gallery: np.ndarray | None = None,
    negative_mask: np.ndarray | None = None,
    diffby: Sequence[Sequence[str | None]] = (),
    null_size: int = 1000,
    seed: int = 0,
) -> MAPResult:
    """MAP per label of retrieving same-label records by cosine similarity.

    Args:
        queries: ``float[n, D]`` (rows are normalised here).
        labels: Label per record; ``None`` (or NaN) records are neither queries nor positives.
        gallery: ``float[n, D]`` embeddings ranked for each query (another view of the same records, for
            cross-modal mAP); default ``queries`` (a record is then never its own candidate).
        negative_mask: ``bool[n]``: only these records are negatives (e.g. controls), and they are never
            queries; default: every record with another label.
        diffby: Columns (values per record) a positive must differ in from the query (e.g. plate).
        null_size: Random rankings per query configuration for p-values.
        seed: Seed of the null rankings.
    """
    q = queries / np.clip(np.linalg.norm(queries, axis=1, keepdims=True), 1e-12, None)
    g = (
        q
        if gallery is None
        else gallery / np.clip(np.linalg.norm(gallery, axis=1, keepdims=True), 1e-12, None)
    )
    sims = q @ g.T
    n = len(labels)
    known = np.array([not _missing(v) for v in labels], dtype=bool)
    label_arr = np.array([str(v) if k else "" for v, k in zip(labels, known, strict=True)], dtype=object)
    diff = [np.array(["" if v is None else str(v) for v in col], dtype=object) for col in diffby]
    rng = np.random.default_rng(seed)
    null_cache: dict[tuple[int, int], np.ndarray] = {}
    per_label: dict[str, list[int]] = {}
    query_ap: dict[int, float] = {}
    nulls: dict[int, np.ndarray] = {}
    for i in range(n):
        if not known[i] or (negative_mask is not None and negative_mask[i]):
            continue
        same = known & (label_arr == label_arr[i])
        for col in diff:
            same &= col != col[i]
        if gallery is None:
            same[i] = False
        negatives = known & (label_arr != label_arr[i]) if negative_mask is None else negative_mask.copy()
        for col in diff:
            negatives &= col != col[i]
        if gallery is None:
            negatives[i] = False
        candidates = same | negatives
        n_pos, n_total = int(same.sum()), int(candidates.sum())
        if n_pos == 0 or n_total == n_pos:
            continue
        query_ap[i] = average_precision(sims[i, candidates], same[candidates])
        key = (n_pos, n_total)
        if key not in null_cache:
            null_cache[key] = null_average_precision(n_pos, n_total, null_size, rng)
        # A shuffled copy per query: the null mAP of a label averages independent-looking draws.
        nulls[i] = rng.permutation(null_cache[key])
        per_label.setdefault(str(label_arr[i]), []).append(i)
    names = sorted(per_label)
    maps, p_values, null_maps = [], [], []
    for name in names:
        members = per_label[name]
        observed = float(np.mean([query_ap[i] for i in members]))
        null = np.mean([nulls[i] for i in members], axis=0)
        maps.append(observed)
        null_maps.append(float(null.mean()))
        p_values.append(float((1 + (null >= observed - 1e-12).sum()) / (1 + len(null))))
    return MAPResult(names, np.array(maps), np.array(p_values), np.array(null_maps), query_ap)
