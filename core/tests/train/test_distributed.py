"""``torchrun --nproc-per-node 2`` with batch b trains the same model as one process with batch 2b."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from .conftest import VENV_BIN, free_port, subprocess_env


@pytest.mark.slow
@pytest.mark.distributed
def test_two_ranks_match_one_process_with_the_global_batch(write_recipe, tmp_path):
    recipe = write_recipe(train={"max_steps": 10, "checkpoint_every": 5, "batch_size": 16})

    def start_two_ranks() -> subprocess.Popen:
        torchrun = [str(VENV_BIN / "torchrun"), "--nproc-per-node", "2", "--master-port", str(free_port())]
        return subprocess.Popen(
            [*torchrun, "-m", "scibind", "train", str(recipe), "--run-dir", str(tmp_path / "ddp")],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=subprocess_env(),
        )

    two = start_two_ranks()
    one = subprocess.run(
        [
            sys.executable,
            "-m",
            "scibind",
            "train",
            str(recipe),
            "--run-dir",
            str(tmp_path / "single"),
            "--set",
            "train.batch_size=32",
        ],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        timeout=300,
    )
    out, _ = two.communicate(timeout=300)
    if two.returncode != 0 and "terminate called without an active exception" in out:
        # A rare abort of the waiting gloo rank seen once in CI (rank 1 blocked in the final barrier while
        # rank 0 evaluates); the run is repeated once in a fresh folder, any other failure fails the test.
        shutil.rmtree(tmp_path / "ddp", ignore_errors=True)
        two = start_two_ranks()
        out, _ = two.communicate(timeout=300)
    assert two.returncode == 0, out
    assert one.returncode == 0, one.stdout + one.stderr

    ckpt = "checkpoints/step-10"
    state = json.loads((tmp_path / "ddp" / ckpt / "state.json").read_text())
    assert state["world_size"] == 2 and state["global_batch_size"] == 32 and len(state["rng"]) == 2
    a = load_file(str(tmp_path / "ddp" / ckpt / "model.safetensors"))
    b = load_file(str(tmp_path / "single" / ckpt / "model.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-5), key
    initial = load_file(str(tmp_path / "single" / "checkpoints/step-5/model.safetensors"))
    assert any(not torch.allclose(initial[k], b[k]) for k in b)  # it did train
    # Rank 0 alone writes the run folder and logs every step once.
    lines = (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()
    steps = [json.loads(line)["step"] for line in lines]
    assert steps == list(range(1, 11))
