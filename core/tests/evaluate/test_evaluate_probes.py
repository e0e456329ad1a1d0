from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scibind import create_head
from scibind.errors import ConfigError, DataError
from scibind.evaluate.context import EvalContext
from scibind.evaluate.probes import KNNTask, LinearProbeTask, cross_val_predictions


def unit(deg: float) -> list[float]:
    return [math.cos(math.radians(deg)), math.sin(math.radians(deg))]


def twins_ctx(with_groups: bool) -> EvalContext:
    # 8 groups of two identical records at 0, 10, ..., 70 degrees; classes alternate, so each record's
    # nearest record outside its group has the other class.
    angles = [10 * (i // 2) for i in range(16)]
    labels: list[str | None] = ["A" if (i // 2) % 2 == 0 else "B" for i in range(16)]
    return EvalContext(
        ids=[f"r{i}" for i in range(16)],
        embeddings={"v": torch.tensor([unit(a) for a in angles])},
        present={"v": torch.ones(16, dtype=torch.bool)},
        labels={"kind": labels},
        groups=[f"g{i // 2}" for i in range(16)] if with_groups else None,
    )


def test_knn_folds_never_split_a_group() -> None:
    # With group folds a record's twin is never in its training set, so 1-NN mostly picks the other class
    # (it is right only when both neighbouring groups are held out with it); leaky folds let twins vote.
    grouped = KNNTask("kind", "v", k=1, folds=4)(twins_ctx(True))
    assert grouped["knn/v/kind/accuracy"] <= 0.25
    leaky = KNNTask("kind", "v", k=1, folds=4)(twins_ctx(False))
    assert leaky["knn/v/kind/accuracy"] >= 0.5


def test_cross_val_predictions_with_a_memorising_model() -> None:
    class Memory:
        def fit(self, x, y):
            self.seen = {tuple(r): label for r, label in zip(x.tolist(), y.tolist(), strict=True)}

        def predict(self, x):
            return np.array([self.seen.get(tuple(r), "?") for r in x.tolist()], dtype=object)

    x = np.repeat(np.arange(10, dtype=float)[:, None], 2, axis=0)
    y = np.array(["A" if i % 4 < 2 else "B" for i in range(20)], dtype=object)
    groups = np.array([f"g{i // 2}" for i in range(20)])
    pred = cross_val_predictions(x, y, groups, lambda n: Memory(), folds=5, seed=0, task="t")
    assert set(pred.tolist()) == {"?"}


def clusters_ctx() -> EvalContext:
    gen = torch.Generator().manual_seed(0)
    centres = torch.tensor([[1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, 1.0, 0]])
    x = torch.cat([c + 0.05 * torch.randn(10, 4, generator=gen) for c in centres])
    labels: list[str | None] = ["a"] * 10 + ["b"] * 10 + ["c"] * 10
    labels[5] = None
    labels.append("lonely")
    x = torch.cat([x, torch.tensor([[0.0, 0, 0, 1.0]])])
    return EvalContext(
        ids=[f"r{i}" for i in range(31)],
        embeddings={"v": torch.nn.functional.normalize(x, dim=1)},
        present={"v": torch.ones(31, dtype=torch.bool)},
        labels={"kind": labels},
        groups=None,
    )


def test_linear_probe_separates_clusters_and_drops_singleton_classes() -> None:
    out = LinearProbeTask("kind", "v", folds=5)(clusters_ctx())
    assert out["linear_probe/v/kind/accuracy"] == 1.0
    assert out["linear_probe/v/kind/balanced_accuracy"] == 1.0
    assert out["linear_probe/v/kind/n"] == 29  # one unlabelled record, one singleton class dropped
    assert out["linear_probe/v/kind/n_classes"] == 3


def test_knn_majority_vote_by_hand() -> None:
    # 6 "A" near 0 deg, 6 "B" near 90 deg, plus one "A" record placed inside the B cluster.
    angles = [0, 2, 4, 6, 8, 10, 80, 82, 84, 86, 88, 90, 85]
    labels: list[str | None] = ["A"] * 6 + ["B"] * 6 + ["A"]
    ctx = EvalContext(
        ids=[str(i) for i in range(13)],
        embeddings={"v": torch.tensor([unit(a) for a in angles])},
        present={"v": torch.ones(13, dtype=torch.bool)},
        labels={"kind": labels},
    )
    out = KNNTask("kind", "v", k=3, folds=2)(ctx)
    # whatever the folds, the intruder's 3 nearest training records are B, and every other record has at
    # least 2 of its own class among its 3 nearest: only the intruder is misclassified
    assert out["knn/v/kind/accuracy"] == pytest.approx(12 / 13)
    assert out["knn/v/kind/balanced_accuracy"] == pytest.approx((6 / 7 + 1) / 2)


def test_probe_errors() -> None:
    ctx = clusters_ctx()
    ctx.labels["one"] = ["x"] * 31
    with pytest.raises(DataError, match="at least 2"):
        LinearProbeTask("one", "v")(ctx)
    with pytest.raises(ConfigError, match="folds"):
        KNNTask("kind", "v", folds=1)
    with pytest.raises(ConfigError, match="label column"):
        KNNTask("missing", "v")(ctx)


def test_registered_heads() -> None:
    ctx = clusters_ctx()
    assert create_head("core/knn", label="kind", view="v", k=3)(ctx)["knn/v/kind/accuracy"] == 1.0
    assert create_head("core/linear-probe", label="kind", view="v", C=0.5)(ctx)["linear_probe/v/kind/n"] == 29
