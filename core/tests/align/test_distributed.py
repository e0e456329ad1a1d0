from __future__ import annotations

import importlib
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from safetensors.torch import load_file
from scibind.align.distributed import gather_no_grad, gather_sizes, gather_with_grad, is_distributed


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_gathers_are_identities_without_a_process_group():
    assert not is_distributed()
    t = torch.randn(3, 2, requires_grad=True)
    assert gather_with_grad(t) is t
    assert gather_no_grad(t) is t
    assert gather_sizes(3) == [3]


@pytest.mark.distributed
def test_two_gloo_ranks_equal_one_process_on_the_global_batch(tmp_path, monkeypatch):
    # Each rank's local embedding gradient is W x the single-process one (all_gather's backward sums);
    # the worker divides by W as DDP's averaging does, so both compare to the global-batch gradient.
    # Spawned processes import the worker by module name: put its folder on the path they inherit.
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    w = importlib.import_module("_dist_worker")
    mp.spawn(w.worker, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    ranks = [load_file(str(tmp_path / f"rank{r}.safetensors")) for r in range(2)]
    for kind in w.OBJECTIVES:
        loss, z, objective, weights = w.step(kind, slice(0, 8))
        for rank, result in enumerate(ranks):
            torch.testing.assert_close(result[f"{kind}/loss"], loss, rtol=1e-12, atol=1e-12)
            for name, p in [*weights.items(), *objective.named_parameters()]:
                torch.testing.assert_close(result[f"{kind}/grad.{name}"], p.grad, rtol=1e-10, atol=1e-12)
            for v in w.VIEWS:
                torch.testing.assert_close(
                    result[f"{kind}/zgrad.{v}"], z[v].grad[w.SLICES[rank]], rtol=1e-10, atol=1e-12
                )
