"""Supervised probes on frozen embeddings: logistic regression and k-nearest neighbours (scikit-learn).

Both use cross-validation on the eval set: :class:`~sklearn.model_selection.StratifiedGroupKFold` when the
manifest has groups (no group is in two folds), else :class:`~sklearn.model_selection.StratifiedKFold`.
Every record is predicted once, by the model of the fold that held it out, and the metrics are computed on
these out-of-fold predictions. Classes with a single record cannot be both trained and tested and are
dropped; the number of folds shrinks to the size of the smallest remaining class (and the number of groups).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np

from scibind.errors import ConfigError, DataError
from scibind.evaluate.context import EvalContext
from scibind.evaluate.zero_shot import classification_metrics

__all__ = ["KNNTask", "LinearProbeTask", "cross_val_predictions"]


def cross_val_predictions(
    x: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray | None,
    make_model: Callable[[int], Any],
    *,
    folds: int,
    seed: int,
    task: str,
) -> np.ndarray:
    """Out-of-fold predictions of ``make_model()`` fitted on the other folds.

    Args:
        x: ``float[n, D]`` features.
        y: ``[n]`` class labels (every class has >= 2 records).
        groups: ``[n]`` group per record, or ``None``.
        make_model: Builds a fresh scikit-learn classifier for a training set of the given size.
        folds: Wanted number of folds (reduced to what the data allows).
        seed: Shuffling seed of the folds.
        task: Task name for error messages.

    Raises:
        DataError: Fewer than 2 folds are possible.
    """
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    n_splits = min(folds, min(Counter(y.tolist()).values()))
    if groups is not None:
        n_splits = min(n_splits, len(set(groups.tolist())))
    if n_splits < 2:
        raise DataError(
            f"{task}: the eval set allows fewer than 2 cross-validation folds (too few groups per class)"
        )
    if groups is not None:
        splits = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed).split(x, y, groups)
    else:
        splits = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed).split(x, y)
    pred = np.empty(len(y), dtype=object)
    for train, test in splits:
        model = make_model(len(train))
        model.fit(x[train], y[train])
        pred[test] = model.predict(x[test])
    return pred


class _ProbeTask:
    """Shared data selection and scoring of probes; subclasses build the classifier."""

    task = ""
    key = ""

    def __init__(self, label: str, view: str, folds: int, seed: int) -> None:
        if folds < 2:
            raise ConfigError(f"{self.task}: folds must be >= 2, got {folds}")
        self.label = label
        self.view = view
        self.folds = int(folds)
        self.seed = int(seed)

    def make_model(self, n_train: int) -> Any:
        raise NotImplementedError

    def __call__(self, ctx: EvalContext) -> dict[str, float]:
        """Cross-validate the probe on records with ``view`` present and ``label`` known."""
        index, y_list = ctx.labelled(self.label, self.view, self.task)
        counts = Counter(y_list)
        keep = np.array([counts[v] >= 2 for v in y_list], dtype=bool)
        y = np.array(y_list, dtype=object)[keep]
        classes = sorted(set(y.tolist()))
        if len(classes) < 2:
            raise DataError(
                f"{self.task}: label {self.label!r} has fewer than 2 classes with at least 2 eval records "
                "each; evaluate on a larger manifest or drop the task"
            )
        idx = index.numpy()[keep]
        x = ctx.embeddings[self.view][idx].float().numpy()
        groups = None
        if ctx.groups is not None:
            # A record without a group is a group of its own.
            groups = np.array(
                [ctx.groups[i] if ctx.groups[i] is not None else f"\0{ctx.ids[i]}" for i in idx]
            )
        pred = cross_val_predictions(
            x, y, groups, self.make_model, folds=self.folds, seed=self.seed, task=self.task
        )
        metrics = classification_metrics(y.tolist(), pred.tolist(), classes)
        prefix = f"{self.key}/{self.view}/{self.label}"
        out = {f"{prefix}/{k}": v for k, v in metrics.items()}
        out[f"{prefix}/n"] = float(len(y))
        out[f"{prefix}/n_classes"] = float(len(classes))
        return out


class LinearProbeTask(_ProbeTask):
    """Logistic regression on standardised embeddings, cross-validated.

    Keys: ``linear_probe/<view>/<label>/accuracy``, ``.../balanced_accuracy``, ``.../macro_f1``, ``.../n``,
    ``.../n_classes``.

    Args:
        label: The label column to predict.
        view: The view whose embeddings are the features.
        folds: Cross-validation folds.
        C: Inverse L2 regularisation strength of the logistic regression.
        seed: Fold shuffling seed.
        max_iter: L-BFGS iterations.
    """

    task = "core/linear-probe"
    key = "linear_probe"

    def __init__(
        self, label: str, view: str, folds: int = 5, C: float = 1.0, seed: int = 0, max_iter: int = 1000
    ) -> None:
        super().__init__(label, view, folds, seed)
        if C <= 0:
            raise ConfigError(f"{self.task}: C must be > 0, got {C}")
        self.C = float(C)
        self.max_iter = int(max_iter)

    def make_model(self, n_train: int) -> Any:
        """A standardising logistic-regression pipeline."""
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        return make_pipeline(StandardScaler(), LogisticRegression(C=self.C, max_iter=self.max_iter))


class KNNTask(_ProbeTask):
    """k-nearest-neighbour majority vote by cosine similarity, cross-validated.

    Keys: ``knn/<view>/<label>/accuracy``, ``.../balanced_accuracy``, ``.../macro_f1``, ``.../n``,
    ``.../n_classes``. ``k`` is capped at the size of the training folds.

    Args:
        label: The label column to predict.
        view: The view whose embeddings are the features.
        k: Neighbours that vote.
        folds: Cross-validation folds.
        seed: Fold shuffling seed.
    """

    task = "core/knn"
    key = "knn"

    def __init__(self, label: str, view: str, k: int = 20, folds: int = 5, seed: int = 0) -> None:
        super().__init__(label, view, folds, seed)
        if k < 1:
            raise ConfigError(f"{self.task}: k must be >= 1, got {k}")
        self.k = int(k)

    def make_model(self, n_train: int) -> Any:
        """A brute-force cosine k-NN classifier."""
        from sklearn.neighbors import KNeighborsClassifier

        return KNeighborsClassifier(
            n_neighbors=max(1, min(self.k, n_train)), metric="cosine", algorithm="brute"
        )
