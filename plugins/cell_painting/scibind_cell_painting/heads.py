"""Evaluation heads of Cell Painting: retrieval mAP (copairs protocol) and plate / batch-effect diagnostics.

Both read only the eval embeddings and label columns (:class:`scibind.evaluate.context.EvalContext`), so
they score any tower, including raw profiles through an identity-like encoder.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scibind.errors import ConfigError, DataError
from scibind.evaluate.context import EvalContext

from scibind_cell_painting.average_precision import mean_average_precision

__all__ = ["BatchEffectsTask", "MAPTask", "aggregate_rows"]

MAP_TASK = "cell_painting/map"
BATCH_TASK = "cell_painting/batch-effects"


def aggregate_rows(
    units: Sequence[str | None], *arrays: np.ndarray
) -> tuple[list[str], list[np.ndarray], np.ndarray]:
    """Average rows sharing a unit (e.g. the sites of a well): well-level aggregation.

    Args:
        units: Unit per record; ``None`` records are left out.
        arrays: ``[n, D]`` arrays averaged per unit.

    Returns:
        ``(unit names, averaged arrays, index of one representative record per unit)``.
    """
    order: dict[str, list[int]] = {}
    for i, unit in enumerate(units):
        if unit is not None:
            order.setdefault(str(unit), []).append(i)
    names = list(order)
    averaged = [np.stack([a[order[u]].mean(axis=0) for u in names]) for a in arrays]
    return names, averaged, np.array([order[u][0] for u in names], dtype=int)


def _column(ctx: EvalContext, name: str, task: str) -> list[str | None]:
    if name == "group" and ctx.groups is not None:
        return list(ctx.groups)
    return ctx.require_label(name, task)


class MAPTask:
    """Mean average precision of retrieving records with the same label (replicates, compounds, MOAs).

    Args:
        label: Label column whose equal values are positives (``compound`` for replicate retrieval,
            ``moa`` for MOA retrieval).
        view: View whose embeddings are the queries.
        gallery_view: View ranked for each query (cross-modal mAP, e.g. image -> perturbation text); default
            ``view``.
        controls: ``{column: value}`` marking control records: they are then the only negatives and never
            queries (copairs' phenotypic-activity protocol). Default: every other label is a negative.
        diffby: Columns in which a positive must differ from its query (e.g. ``[plate]`` so replicates on
            the same plate do not count).
        aggregate: Column whose records are averaged first (e.g. ``well`` ids: well-level profiles).
        null_size: Random rankings per query for p-values.
        seed: Seed of the random rankings.
    """

    def __init__(
        self,
        label: str,
        view: str,
        gallery_view: str | None = None,
        controls: Mapping[str, str] | None = None,
        diffby: Sequence[str] = (),
        aggregate: str | None = None,
        null_size: int = 1000,
        seed: int = 0,
    ) -> None:
        if null_size < 10:
            raise ConfigError(f"{MAP_TASK}: null_size must be >= 10, got {null_size}")
        self.label = label
        self.view = view
        self.gallery_view = gallery_view
        self.controls = dict(controls or {})
        self.diffby = list(diffby)
        self.aggregate = aggregate
        self.null_size = null_size
        self.seed = seed

    def __call__(self, ctx: EvalContext) -> dict[str, float]:
        """Score ``ctx``; keys ``map/<view>[-><gallery>][@<aggregate>]/<label>/{mAP, mAP_chance, ...}``."""
        mask = ctx.require_view(self.view, MAP_TASK).numpy()
        queries = ctx.embeddings[self.view].numpy()
        gallery = None
        if self.gallery_view is not None and self.gallery_view != self.view:
            mask = mask & ctx.require_view(self.gallery_view, MAP_TASK).numpy()
            gallery = ctx.embeddings[self.gallery_view].numpy()
        labels = _column(ctx, self.label, MAP_TASK)
        columns = {c: _column(ctx, c, MAP_TASK) for c in [*self.diffby, *self.controls]}
        keep = np.flatnonzero(mask)
        pick = lambda values: [values[i] for i in keep]  # noqa: E731
        labels, columns = pick(labels), {c: pick(v) for c, v in columns.items()}
        queries = queries[keep]
        gallery = None if gallery is None else gallery[keep]
        if self.aggregate is not None:
            units = pick(_column(ctx, self.aggregate, MAP_TASK))
            arrays = (queries,) if gallery is None else (queries, gallery)
            _, averaged, rep = aggregate_rows(units, *arrays)
            for name, values in [(self.label, labels), *columns.items()]:
                _check_nested(units, values, self.aggregate, name)
            queries = averaged[0]
            gallery = averaged[1] if gallery is not None else None
            labels = [labels[i] for i in rep]
            columns = {c: [v[i] for i in rep] for c, v in columns.items()}
        negatives = None
        if self.controls:
            negatives = np.ones(len(labels), dtype=bool)
            for column, value in self.controls.items():
                negatives &= np.array([v == str(value) for v in columns[column]])
            if not negatives.any():
                raise DataError(f"{MAP_TASK}: no eval record matches the controls {self.controls}")
        result = mean_average_precision(
            queries,
            labels,
            gallery=gallery,
            negative_mask=negatives,
            diffby=[columns[c] for c in self.diffby],
            null_size=self.null_size,
            seed=self.seed,
        )
        if not result.labels:
            raise DataError(
                f"{MAP_TASK}: no query has a positive (label {self.label!r} needs at least two records per "
                "value in the eval split, after diffby)"
            )
        name = self.view if gallery is None else f"{self.view}->{self.gallery_view}"
        if self.aggregate is not None:
            name += f"@{self.aggregate}"
        prefix = f"map/{name}/{self.label}"
        return {
            f"{prefix}/mAP": result.mean,
            f"{prefix}/mAP_chance": result.chance,
            f"{prefix}/fraction_retrieved": result.fraction_retrieved,
            f"{prefix}/n_queries": float(len(result.query_ap)),
            f"{prefix}/n_labels": float(len(result.labels)),
        }


def _check_nested(units: Sequence[str | None], values: Sequence[Any], unit_name: str, name: str) -> None:
    seen: dict[str, Any] = {}
    for unit, value in zip(units, values, strict=True):
        if unit is None:
            continue
        if seen.setdefault(str(unit), value) != value:
            raise DataError(
                f"{MAP_TASK}: records of {unit_name} {unit!r} disagree on {name!r} ({seen[str(unit)]!r} vs "
                f"{value!r}); aggregate by a column nested in it"
            )


class BatchEffectsTask:
    """Plate / batch-effect diagnostics of one view's embeddings.

    Reports how well the batch (plate) can be told from the embedding (leave-one-out kNN accuracy against
    the majority-class rate, and the cosine silhouette of batches: high values mean the space encodes the
    plate), and, with ``label``, replicate mAP within each batch against mAP when positives must come from
    another batch (a large drop means plate effects dominate).

    Args:
        view: The view to diagnose.
        batch: The batch column (``plate``, ``batch``, ``group``).
        label: Optional perturbation label for the within / across batch mAP.
        k: Neighbours of the kNN.
        null_size: Random rankings for mAP p-values.
    """

    def __init__(
        self, view: str, batch: str = "plate", label: str | None = None, k: int = 5, null_size: int = 200
    ) -> None:
        if k < 1:
            raise ConfigError(f"{BATCH_TASK}: k must be >= 1, got {k}")
        self.view = view
        self.batch = batch
        self.label = label
        self.k = k
        self.null_size = null_size

    def __call__(self, ctx: EvalContext) -> dict[str, float]:
        """Score ``ctx``; keys ``batch/<view>/<batch>/...`` and ``batch/<view>/<label>/...``."""
        from sklearn.metrics import silhouette_score

        mask = ctx.require_view(self.view, BATCH_TASK).numpy()
        batches_all = _column(ctx, self.batch, BATCH_TASK)
        keep = np.array([i for i in np.flatnonzero(mask) if batches_all[i] is not None], dtype=int)
        x = ctx.embeddings[self.view].numpy()[keep].astype(np.float64)
        x = x / np.clip(np.linalg.norm(x, axis=1, keepdims=True), 1e-12, None)
        batches = np.array([str(batches_all[i]) for i in keep], dtype=object)
        names = sorted(set(batches.tolist()))
        if len(names) < 2:
            raise DataError(
                f"{BATCH_TASK}: the eval split has {len(names)} {self.batch}(s); it needs two or more"
            )
        sims = x @ x.T
        np.fill_diagonal(sims, -np.inf)
        k = min(self.k, len(x) - 1)
        neighbours = np.argsort(-sims, axis=1, kind="stable")[:, :k]
        votes = batches[neighbours]
        predicted = np.array([max(sorted(set(row)), key=list(row).count) for row in votes], dtype=object)
        prefix = f"batch/{self.view}/{self.batch}"
        counts = np.array([(batches == b).sum() for b in names])
        out = {
            f"{prefix}/knn_accuracy": float((predicted == batches).mean()),
            f"{prefix}/knn_accuracy_chance": float(counts.max() / counts.sum()),
            f"{prefix}/silhouette": float(silhouette_score(x, batches, metric="cosine")),
        }
        if self.label is None:
            return out
        labels_all = _column(ctx, self.label, BATCH_TASK)
        labels = [labels_all[i] for i in keep]
        lab_prefix = f"batch/{self.view}/{self.label}"
        known = np.array([v is not None for v in labels])
        if len(set(v for v in labels if v is not None)) >= 2:
            out[f"{lab_prefix}/silhouette"] = float(
                silhouette_score(x[known], np.array(labels, dtype=object)[known], metric="cosine")
            )
        within = []
        for name in names:
            rows = np.flatnonzero(batches == name)
            res = mean_average_precision(x[rows], [labels[i] for i in rows], null_size=self.null_size)
            if res.labels:
                out[f"{lab_prefix}/mAP@{name}"] = res.mean
                within.append(res.mean)
        if within:
            out[f"{lab_prefix}/mAP_within_{self.batch}"] = float(np.mean(within))
        across = mean_average_precision(x, labels, diffby=[batches.tolist()], null_size=self.null_size)
        if across.labels:
            out[f"{lab_prefix}/mAP_across_{self.batch}"] = across.mean
        return out
