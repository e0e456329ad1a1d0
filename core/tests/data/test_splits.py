from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scibind.data.splits import assign_splits, check_group_splits
from scibind.errors import ConfigError, DataError

groups_strategy = st.lists(
    st.one_of(st.none(), st.integers(0, 15).map(lambda g: f"g{g}")), min_size=1, max_size=120
)
fractions_strategy = st.sampled_from(
    [
        {"train": 0.8, "eval": 0.2},
        {"train": 0.5, "eval": 0.5},
        {"train": 0.7, "val": 0.1, "test": 0.2},
        {"train": 1.0},
    ]
)


def _units(ids, groups):
    """Group of each record, with ungrouped records as their own group."""
    return [("id", i) if g is None else ("g", g) for i, g in zip(ids, groups, strict=True)]


@settings(max_examples=150, deadline=None)
@given(groups=groups_strategy, fractions=fractions_strategy, seed=st.integers(0, 2**31 - 1))
def test_group_safe_and_close_to_fractions(groups, fractions, seed):
    ids = [f"r{i}" for i in range(len(groups))]
    splits = assign_splits(ids, groups, fractions, seed=seed)
    assert len(splits) == len(ids)
    assert set(splits) <= set(fractions)
    by_unit: dict = {}
    for unit, split in zip(_units(ids, groups), splits, strict=True):
        by_unit.setdefault(unit, set()).add(split)
    assert all(len(s) == 1 for s in by_unit.values())
    sizes = Counter(_units(ids, groups))
    largest = max(sizes.values())
    counts = Counter(splits)
    for name, fraction in fractions.items():
        assert abs(counts.get(name, 0) - fraction * len(ids)) <= (len(fractions) - 1) * largest + 1e-9
    check_group_splits(splits, groups)


@settings(max_examples=60, deadline=None)
@given(groups=groups_strategy, seed=st.integers(0, 1000), data=st.data())
def test_deterministic_and_independent_of_row_order(groups, seed, data):
    ids = [f"r{i}" for i in range(len(groups))]
    first = assign_splits(ids, groups, seed=seed)
    assert assign_splits(ids, groups, seed=seed) == first
    order = data.draw(st.permutations(range(len(ids))))
    shuffled = assign_splits([ids[i] for i in order], [groups[i] for i in order], seed=seed)
    assert dict(zip((ids[i] for i in order), shuffled, strict=True)) == dict(zip(ids, first, strict=True))


def test_exact_fractions_with_singleton_groups_and_seed_changes_assignment():
    ids = [f"r{i}" for i in range(100)]
    splits = assign_splits(ids, None, {"train": 0.8, "eval": 0.2}, seed=0)
    assert Counter(splits) == {"train": 80, "eval": 20}
    other = assign_splits(ids, None, {"train": 0.8, "eval": 0.2}, seed=1)
    assert Counter(other) == {"train": 80, "eval": 20}
    assert other != splits


def test_big_group_stays_whole():
    groups = ["big"] * 50 + [f"s{i}" for i in range(50)]
    splits = assign_splits([str(i) for i in range(100)], groups, {"train": 0.8, "eval": 0.2}, seed=3)
    assert len(set(splits[:50])) == 1
    assert Counter(splits) == {"train": 80, "eval": 20}


@pytest.mark.parametrize(
    "fractions, match",
    [
        ({"train": 0.8, "eval": 0.3}, "sum to 1"),
        ({"train": 1.2, "eval": -0.2}, ">= 0"),
        ({}, "empty"),
    ],
)
def test_bad_fractions(fractions, match):
    with pytest.raises(ConfigError, match=match):
        assign_splits(["a"], ["g"], fractions)


def test_length_mismatch():
    with pytest.raises(DataError, match="2 ids but 1 groups"):
        assign_splits(["a", "b"], ["g"])


def test_check_group_splits_names_group_and_splits():
    check_group_splits(["train", "eval", None], ["a", "b", "a"])
    with pytest.raises(DataError, match=r"m\.csv: group 'p7' is in splits 'eval', 'train'") as info:
        check_group_splits(["train", "eval", "eval", "train"], ["p7", "p7", "p8", None], where="m.csv")
    assert "p8" not in str(info.value)
