from __future__ import annotations

import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scibind.data.sampler import GlobalBatchSampler
from scibind.errors import ConfigError


def take(sampler, steps):
    return list(itertools.islice(iter(sampler), steps))


def test_first_epoch_is_the_seeded_permutation():
    sampler = GlobalBatchSampler(10, 4, seed=7)
    perm = torch.randperm(10, generator=torch.Generator().manual_seed(7)).tolist()
    assert sampler.steps_per_epoch == 2
    batches = take(sampler, 3)
    assert batches[0] == perm[:4] and batches[1] == perm[4:8]
    second = torch.randperm(10, generator=torch.Generator().manual_seed(8)).tolist()
    assert batches[2] == second[:4]


@settings(max_examples=40, deadline=None)
@given(n=st.integers(8, 60), local=st.integers(1, 4), world=st.integers(1, 4), seed=st.integers(0, 99))
def test_ranks_concatenate_to_the_one_process_batch(n, local, world, seed):
    global_bs = local * world
    if global_bs > n:
        return
    single = take(GlobalBatchSampler(n, global_bs, seed=seed), 12)
    per_rank = [
        take(GlobalBatchSampler(n, global_bs, seed=seed, rank=r, world_size=world), 12) for r in range(world)
    ]
    for step in range(12):
        assert [i for r in range(world) for i in per_rank[r][step]] == single[step]
        assert all(len(per_rank[r][step]) == local for r in range(world))


@settings(max_examples=30, deadline=None)
@given(start=st.integers(0, 25), seed=st.integers(0, 99))
def test_resume_continues_the_exact_order(start, seed):
    full = take(GlobalBatchSampler(23, 6, seed=seed, rank=1, world_size=2), 30)
    resumed = take(GlobalBatchSampler(23, 6, seed=seed, rank=1, world_size=2, start_step=start), 30 - start)
    assert resumed == full[start:]


def test_epochs_differ_and_cover_each_record_once():
    sampler = GlobalBatchSampler(12, 4, seed=0)
    batches = take(sampler, 6)
    epoch0 = [i for b in batches[:3] for i in b]
    epoch1 = [i for b in batches[3:] for i in b]
    assert sorted(epoch0) == list(range(12)) and sorted(epoch1) == list(range(12))
    assert epoch0 != epoch1


def test_drop_last_false_completes_the_last_batch():
    sampler = GlobalBatchSampler(10, 4, seed=1, drop_last=False)
    perm = torch.randperm(10, generator=torch.Generator().manual_seed(1)).tolist()
    assert sampler.steps_per_epoch == 3
    assert sampler.global_batch(2) == perm[8:] + perm[:2]
    tiny = GlobalBatchSampler(3, 8, seed=0, drop_last=False)
    assert len(tiny.global_batch(0)) == 8 and set(tiny.global_batch(0)) == {0, 1, 2}
    dropping = GlobalBatchSampler(10, 4, seed=1)
    next_epoch = torch.randperm(10, generator=torch.Generator().manual_seed(2)).tolist()
    assert dropping.steps_per_epoch == 2 and dropping.global_batch(2) == next_epoch[:4]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n": 10, "global_batch_size": 6, "world_size": 4}, "not divisible by world size 4"),
        ({"n": 10, "global_batch_size": 4, "world_size": 2, "rank": 2}, "rank 2 is out of range"),
        ({"n": 3, "global_batch_size": 4}, "only 3 records"),
        ({"n": 0, "global_batch_size": 4}, "> 0"),
        ({"n": 10, "global_batch_size": 4, "start_step": -1}, "start_step"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        GlobalBatchSampler(seed=0, **kwargs)


def test_works_as_a_dataloader_batch_sampler():
    data = torch.arange(20).float()
    sampler = GlobalBatchSampler(20, 5, seed=3)
    loader = torch.utils.data.DataLoader(data, batch_sampler=sampler)
    first = next(iter(loader))
    assert first.tolist() == [float(i) for i in sampler.batch(0)]
