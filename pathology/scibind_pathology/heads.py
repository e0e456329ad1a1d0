"""Slide classification with a gated attention MIL (ABMIL) head trained on cached tile features.

``pathology/abmil-classifier`` is cross-validated like the core's probes: stratified folds, every slide
predicted by the fold model that did not see it. It takes a manifest (a ``wsi_bag`` column of feature
files and a label column) or the bags directly, so a lab can score its TRIDENT/CLAM features with one call.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scibind.errors import ConfigError, DataError

__all__ = ["ABMILClassifierTask", "CrossValidation", "cross_validate_abmil", "fit_abmil"]


def _load(source: Any, view: str, label: str) -> tuple[list[np.ndarray], list[str]]:
    if isinstance(source, Mapping):
        features, labels = list(source["features"]), [str(v) for v in source["labels"]]
        if len(features) != len(labels):
            raise DataError(f"{len(features)} bags but {len(labels)} labels")
        return [np.asarray(f, dtype=np.float32) for f in features], labels
    from scibind.data.manifest import read_manifest

    from scibind_pathology.features import load_features

    manifest = read_manifest(Path(source))
    frame = manifest.frame
    for column in (view, label):
        if column not in frame.columns:
            raise ConfigError(f"{source}: no column {column!r}; columns are {list(frame.columns)}")
    keep = frame[view].notna() & frame[label].notna()
    bags = [load_features(manifest.base_dir / str(v)).features for v in frame.loc[keep, view]]
    return bags, [str(v) for v in frame.loc[keep, label]]


def fit_abmil(
    bags: Sequence[np.ndarray],
    targets: np.ndarray,
    n_classes: int,
    *,
    hidden_dim: int = 64,
    epochs: int = 40,
    lr: float = 2e-3,
    batch_size: int = 16,
    seed: int = 0,
) -> Any:
    """Train an ABMIL classifier (``ABMILEncoder`` + softmax) on bags; returns the model in eval mode."""
    import torch

    from scibind_pathology.bags import ABMILEncoder, collate_bags

    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = ABMILEncoder(in_dim=int(bags[0].shape[1]), embed_dim=n_classes, hidden_dim=hidden_dim)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    y = torch.as_tensor(targets, dtype=torch.int64)
    for _ in range(epochs):
        order = torch.randperm(len(bags), generator=gen)
        for start in range(0, len(bags), batch_size):
            idx = order[start : start + batch_size].tolist()
            batch = collate_bags([{"features": torch.from_numpy(bags[i])} for i in idx])
            loss = torch.nn.functional.cross_entropy(model(batch), y[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model.eval()


@dataclass
class CrossValidation:
    """Out-of-fold results of :func:`cross_validate_abmil`.

    Attributes:
        metrics: ``accuracy``, ``balanced_accuracy``, ``macro_f1``, ``n``, ``n_classes``.
        classes: Class names, sorted; a class index refers to this list.
        kept: Indices (into the input bags) of the slides scored: those of classes with 2+ slides.
        predictions: Predicted class index of each kept slide, by the fold model that did not see it.
        targets: True class index of each kept slide.
        folds: The number of stratified folds used.
    """

    metrics: dict[str, float]
    classes: list[str]
    kept: list[int]
    predictions: np.ndarray
    targets: np.ndarray
    folds: int


def cross_validate_abmil(
    bags: Sequence[np.ndarray],
    labels: Sequence[str],
    *,
    folds: int = 5,
    epochs: int = 40,
    hidden_dim: int = 64,
    lr: float = 2e-3,
    seed: int = 0,
) -> CrossValidation:
    """Stratified k-fold ABMIL: every slide predicted by the fold model that did not see it.

    Classes with fewer than two slides are left out; ``folds`` shrinks to the smallest class.

    Raises:
        DataError: Fewer than two classes with two slides each.
    """
    import torch
    from sklearn.metrics import balanced_accuracy_score, f1_score
    from sklearn.model_selection import StratifiedKFold

    from scibind_pathology.bags import collate_bags

    labels = [str(v) for v in labels]
    classes, counts = np.unique(labels, return_counts=True)
    keep_classes = set(classes[counts >= 2])
    if len(keep_classes) < 2:
        found = {str(c): int(n) for c, n in zip(classes, counts, strict=True)}
        raise DataError(f"abmil-classifier needs two classes with 2+ slides each; got {found}")
    keep = [i for i, v in enumerate(labels) if v in keep_classes]
    kept_bags = [bags[i] for i in keep]
    names = sorted(keep_classes)
    y = np.array([names.index(labels[i]) for i in keep])
    n_folds = max(2, min(folds, int(np.bincount(y).min())))
    pred = np.zeros(len(y), dtype=np.int64)
    for train, test in StratifiedKFold(n_folds, shuffle=True, random_state=seed).split(np.zeros(len(y)), y):
        model = fit_abmil(
            [kept_bags[i] for i in train],
            y[train],
            len(names),
            hidden_dim=hidden_dim,
            epochs=epochs,
            lr=lr,
            seed=seed,
        )
        with torch.no_grad():
            logits = model(collate_bags([{"features": torch.from_numpy(kept_bags[i])} for i in test]))
        pred[test] = logits.argmax(dim=1).numpy()
    metrics = {
        "accuracy": float((pred == y).mean()),
        "balanced_accuracy": float(balanced_accuracy_score(y, pred)),
        "macro_f1": float(f1_score(y, pred, average="macro")),
        "n": float(len(y)),
        "n_classes": float(len(names)),
    }
    return CrossValidation(metrics, names, keep, pred, y, n_folds)


class ABMILClassifierTask:
    """Cross-validated ABMIL slide classification.

    Args:
        label: Label column of the manifest.
        view: Column of feature files (``.h5``, TRIDENT/CLAM layout).
        folds: Stratified folds (shrunk to the smallest class).
        epochs: Training epochs per fold.
        hidden_dim: Width of the attention network.
        lr: AdamW learning rate.
        seed: Seed of folds and training.
    """

    def __init__(
        self,
        label: str = "label",
        view: str = "slide",
        folds: int = 5,
        epochs: int = 40,
        hidden_dim: int = 64,
        lr: float = 2e-3,
        seed: int = 0,
    ) -> None:
        self.label, self.view, self.folds = label, view, folds
        self.epochs, self.hidden_dim, self.lr, self.seed = epochs, hidden_dim, lr, seed

    def __call__(self, source: str | Path | Mapping[str, Any]) -> dict[str, float]:
        """Score a manifest path or ``{"features": [bag, ...], "labels": [...]}``.

        Returns:
            ``abmil/<label>/accuracy``, ``balanced_accuracy``, ``macro_f1``, ``n``, ``n_classes``.

        Raises:
            DataError: Fewer than two classes with two slides each.
        """
        bags, labels = _load(source, self.view, self.label)
        result = cross_validate_abmil(
            bags,
            labels,
            folds=self.folds,
            epochs=self.epochs,
            hidden_dim=self.hidden_dim,
            lr=self.lr,
            seed=self.seed,
        )
        return {f"abmil/{self.label}/{key}": value for key, value in result.metrics.items()}
