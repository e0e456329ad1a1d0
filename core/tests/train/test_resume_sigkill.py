"""A run killed with SIGKILL and resumed ends with exactly the weights of an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file
from scibind.train.checkpoint import list_checkpoints

from .conftest import subprocess_env

MAX_STEPS = 150


def _start(recipe, run_dir, *extra):
    log = open(run_dir.parent / f"{run_dir.name}.log", "wb")  # noqa: SIM115 - closed when the process ends
    cmd = [sys.executable, "-m", "scibind", "train", str(recipe), "--run-dir", str(run_dir), *extra]
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=subprocess_env())


def _log(run_dir):
    return (run_dir.parent / f"{run_dir.name}.log").read_text(errors="replace")


def _kill_after_first_checkpoint(recipe, run_dir) -> int:
    proc = _start(recipe, run_dir)
    deadline = time.monotonic() + 240
    while not list_checkpoints(run_dir):
        if proc.poll() is not None:
            pytest.fail(f"training exited with {proc.returncode} before a checkpoint:\n{_log(run_dir)}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("no checkpoint appeared within 240 s")
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    return list_checkpoints(run_dir)[-1][0]


@pytest.mark.slow
def test_sigkill_then_resume_matches_an_uninterrupted_run(write_recipe, tmp_path):
    recipe = write_recipe(
        towers={"view_a": {"encoder_kwargs": {"dropout": 0.3}}},  # dropout: the RNG must be restored too
        train={"max_steps": MAX_STEPS, "checkpoint_every": 10, "log_every": 5},
    )
    full = tmp_path / "full"
    uninterrupted = _start(recipe, full)
    # The kill lands at a random moment after the first checkpoint; should the run outpace the poll and
    # finish first, try again in a fresh folder.
    for attempt in range(3):
        killed = tmp_path / f"killed-{attempt}"
        last = _kill_after_first_checkpoint(recipe, killed)
        if last < MAX_STEPS:
            break
    else:
        pytest.fail("the run always finished before it could be killed")

    resumed = subprocess.run(
        [sys.executable, "-m", "scibind", "train", str(recipe), "--run-dir", str(killed), "--resume"],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "resuming from" in resumed.stderr
    assert uninterrupted.wait(timeout=300) == 0, _log(full)

    final = f"checkpoints/step-{MAX_STEPS}"
    for name in ("model.safetensors", "optimizer.safetensors"):
        a = load_file(str(full / final / name))
        b = load_file(str(killed / final / name))
        assert a.keys() == b.keys()
        different = [k for k in a if not k.startswith("rng.") and not torch.equal(a[k], b[k])]
        assert different == [], f"{name}: tensors differ after resume: {different}"
    assert _logged_losses(full) == _logged_losses(killed)


def _logged_losses(run_dir):
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], r["loss"], r["lr"], r["parts"]) for r in rows]
