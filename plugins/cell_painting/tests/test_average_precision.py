"""Average precision against scikit-learn, permutation nulls, and the heads on hand-built embeddings."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scibind.errors import DataError
from scibind.evaluate.context import EvalContext
from scibind_cell_painting.average_precision import (
    average_precision,
    mean_average_precision,
    null_average_precision,
)
from scibind_cell_painting.heads import BatchEffectsTask, MAPTask


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.floats(-1, 1, allow_nan=False), st.booleans()), min_size=2, max_size=30).filter(
        lambda rows: any(p for _, p in rows) and len({s for s, _ in rows}) == len(rows)
    )
)
def test_average_precision_equals_sklearn_without_ties(rows):
    from sklearn.metrics import average_precision_score

    scores = np.array([s for s, _ in rows])
    positive = np.array([p for _, p in rows])
    assert average_precision(scores, positive) == pytest.approx(average_precision_score(positive, scores))


def test_null_ap_mean_matches_the_exact_expectation():
    # E[AP] of a random ranking = (1/P) sum_k k * E[1/rank_k]; for P=1 it is H_N / N.
    null = null_average_precision(1, 10, 20000, np.random.default_rng(0))
    assert null.mean() == pytest.approx(sum(1 / r for r in range(1, 11)) / 10, rel=0.02)


def test_perfect_and_reversed_rankings():
    x = np.array([[1.0, 0], [0.99, 0.1], [0, 1.0], [0.1, 0.99]])
    good = mean_average_precision(x, ["a", "a", "b", "b"], null_size=200)
    assert good.mean == 1.0 and good.labels == ["a", "b"]
    bad = mean_average_precision(x, ["a", "b", "a", "b"], null_size=200)
    assert bad.mean == pytest.approx((1 / 3 + 1 / 2) / 2)  # label a: APs 1/3, 1/3; label b: 1/2, 1/2
    assert bad.fraction_retrieved == 0.0


def test_controls_are_the_only_negatives_and_never_queries():
    x = np.array([[1.0, 0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9], [0.5, 0.5]])
    labels = ["a", "a", "b", "b", "ctl"]
    result = mean_average_precision(x, labels, negative_mask=np.array([0, 0, 0, 0, 1], bool), null_size=100)
    assert sorted(result.query_ap) == [0, 1, 2, 3]
    assert result.mean == 1.0  # same-label pairs outrank the control; other labels are not candidates


def _ctx(x, **labels):
    n = len(x)
    return EvalContext(
        ids=[str(i) for i in range(n)],
        embeddings={"cells": torch.tensor(x, dtype=torch.float32)},
        present={"cells": torch.ones(n, dtype=torch.bool)},
        labels=labels,
    )


def test_map_head_diffby_and_aggregate():
    x = np.array([[1.0, 0], [1.0, 0.05], [0, 1.0], [0.05, 1.0], [1.0, 0.1], [0.1, 1.0]])
    ctx = _ctx(
        x,
        cpd=["a", "a", "b", "b", "a", "b"],
        plate=["P1", "P1", "P1", "P1", "P2", "P2"],
        well=["w1", "w1", "w2", "w2", "w3", "w4"],
    )
    out = MAPTask("cpd", "cells", null_size=100)(ctx)
    assert out["map/cells/cpd/mAP"] == 1.0 and out["map/cells/cpd/n_queries"] == 6.0
    across = MAPTask("cpd", "cells", diffby=["plate"], null_size=100)(ctx)
    assert (
        across["map/cells/cpd/n_queries"] == 6.0
    )  # every record has a same-label partner on the other plate
    wells = MAPTask("cpd", "cells", aggregate="well", null_size=100)(ctx)
    assert wells["map/cells@well/cpd/n_queries"] == 4.0 and wells["map/cells@well/cpd/mAP"] == 1.0
    with pytest.raises(DataError, match="disagree on 'cpd'"):
        MAPTask("cpd", "cells", aggregate="plate")(ctx)


def test_batch_effects_see_a_plate_shift():
    rng = np.random.default_rng(0)
    labels = [f"c{i % 4}" for i in range(40)]
    plates = [f"P{i // 20}" for i in range(40)]
    centres = rng.normal(size=(4, 6))
    clean = centres[[i % 4 for i in range(40)]] + 0.1 * rng.normal(size=(40, 6))
    clean = np.concatenate([clean, np.ones((40, 1))], axis=1)
    shifted = clean + np.array([[0] * 6 + [4.0 * (p == "P1")] for p in plates])
    quiet = BatchEffectsTask("cells", "plate", "cpd")(_ctx(clean, cpd=labels, plate=plates))
    loud = BatchEffectsTask("cells", "plate", "cpd")(_ctx(shifted, cpd=labels, plate=plates))
    assert loud["batch/cells/plate/knn_accuracy"] == 1.0
    assert quiet["batch/cells/plate/knn_accuracy"] < 0.8
    assert loud["batch/cells/plate/silhouette"] > quiet["batch/cells/plate/silhouette"]
    assert quiet["batch/cells/cpd/mAP_across_plate"] > 0.9
