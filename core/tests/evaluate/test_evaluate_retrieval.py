from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scibind import create_head
from scibind.errors import ConfigError
from scibind.evaluate.context import EvalContext
from scibind.evaluate.retrieval import RetrievalTask, chance_levels, group_codes, retrieval_ranks

A = [[1.0, 0.0], [0.0, 1.0], [0.6, 0.8], [1.0, 0.0]]
B = [[0.8, 0.6], [1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]  # record 3 has no b


def make_ctx(groups: list[str | None] | None = None) -> EvalContext:
    return EvalContext(
        ids=["r0", "r1", "r2", "r3"],
        embeddings={"a": torch.tensor(A), "b": torch.tensor(B)},
        present={"a": torch.tensor([True, True, True, True]), "b": torch.tensor([True, True, True, False])},
        labels={},
        groups=groups,
    )


def test_hand_computed_ranks_both_directions() -> None:
    # a0: b1 (1.0) beats b0 (0.8) -> rank 2; a1: b2 (1.0), b0 (0.6) beat b1 (0.0) -> 3;
    # a2: b0 (0.96) beats b2 (0.8) -> 2
    out = RetrievalTask()(make_ctx())
    for d in ("a->b", "b->a"):
        assert out[f"{d}/n"] == 3
        assert out[f"{d}/R@1"] == 0.0
        assert out[f"{d}/R@5"] == 1.0
        assert out[f"{d}/R@10"] == 1.0
        assert out[f"{d}/MRR"] == pytest.approx((1 / 2 + 1 / 3 + 1 / 2) / 3)
        assert out[f"{d}/median_rank"] == 2.0
        assert out[f"{d}/R@1_chance"] == pytest.approx(1 / 3)
        assert out[f"{d}/R@5_chance"] == 1.0
        assert out[f"{d}/MRR_chance"] == pytest.approx((1 + 1 / 2 + 1 / 3) / 3)
    ranks = retrieval_ranks(torch.tensor(A[:3]), torch.tensor(B[:3]))
    assert ranks.tolist() == [2, 3, 2]


def test_group_match_counts_any_record_of_the_group() -> None:
    # groups x, x, None: a0 best correct b1 (1.0) -> 1; a1 best correct b0 (0.6) < b2 (1.0) -> 2;
    # a2 only b2 -> 2
    out = RetrievalTask(match="group")(make_ctx(["x", "x", None, "y"]))
    assert out["a->b@group/R@1"] == pytest.approx(1 / 3)
    assert out["a->b@group/MRR"] == pytest.approx((1 + 1 / 2 + 1 / 2) / 3)
    assert out["a->b@group/median_rank"] == 2.0
    # m=2 of n=3: P(R@1) = 2/3, E[1/r] = 2/3 + 1/3 * 1/2; m=1: 1/3 and 11/18
    assert out["a->b@group/R@1_chance"] == pytest.approx((2 / 3 + 2 / 3 + 1 / 3) / 3)
    assert out["a->b@group/MRR_chance"] == pytest.approx((5 / 6 + 5 / 6 + 11 / 18) / 3)


def test_group_codes_give_missing_groups_their_own_code() -> None:
    codes = group_codes(["x", None, "x", None, "y"]).tolist()
    assert codes[0] == codes[2] and len(set(codes)) == 4


def test_chunked_ranks_match_brute_force() -> None:
    gen = torch.Generator().manual_seed(0)
    q = torch.nn.functional.normalize(torch.randn(53, 8, generator=gen), dim=1)
    g = torch.nn.functional.normalize(q + 0.8 * torch.randn(53, 8, generator=gen), dim=1)
    sims = q.numpy() @ g.numpy().T
    expected = [1 + int((sims[i] > sims[i, i]).sum()) for i in range(53)]
    assert retrieval_ranks(q, g, chunk_size=7).tolist() == expected
    assert retrieval_ranks(q, g, chunk_size=1000).tolist() == expected
    groups = torch.arange(53) // 3
    grouped = retrieval_ranks(q, g, groups=groups, chunk_size=5).tolist()
    for i in range(53):
        pos = groups.numpy() == groups[i].item()
        best = sims[i][pos].max()
        assert grouped[i] == 1 + int((sims[i][~pos] > best).sum())


def test_chance_levels_match_simulation() -> None:
    rng = np.random.default_rng(0)
    n, m = 12, 3
    firsts = [min(rng.permutation(n)[:m]) + 1 for _ in range(20000)]
    out = chance_levels(torch.full((5,), m), n, ks=(1, 5))
    assert out["R@5_chance"] == pytest.approx(np.mean([f <= 5 for f in firsts]), abs=0.01)
    assert out["MRR_chance"] == pytest.approx(np.mean([1 / f for f in firsts]), abs=0.01)
    assert chance_levels(torch.ones(3, dtype=torch.long), 4)["MRR_chance"] == pytest.approx(
        (1 + 1 / 2 + 1 / 3 + 1 / 4) / 4
    )


def test_configured_pairs_and_errors() -> None:
    ctx = make_ctx()
    assert RetrievalTask(pairs=[["b", "a"]]).directions(ctx) == [("b", "a"), ("a", "b")]
    with pytest.raises(ConfigError, match="view 'c'"):
        RetrievalTask(pairs=[["a", "c"]])(ctx)
    with pytest.raises(ConfigError, match="group"):
        RetrievalTask(match="group")(ctx)
    with pytest.raises(ConfigError, match="match"):
        RetrievalTask(match="label")


def test_registered_head_builds_the_task() -> None:
    task = create_head("core/retrieval", ks=[1, 2])
    out = task(make_ctx())
    assert set(out) >= {"a->b/R@1", "a->b/R@2", "b->a/MRR"}
    assert math.isclose(out["a->b/R@2"], 2 / 3)
