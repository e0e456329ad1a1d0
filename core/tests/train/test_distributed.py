"""``torchrun --nproc-per-node 2`` with batch b trains the same model as one process with batch 2b."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from .conftest import VENV_BIN, free_port, subprocess_env


def _two_ranks(recipe: Path, run_dir: Path) -> subprocess.Popen:
    torchrun = [str(VENV_BIN / "torchrun"), "--nproc-per-node", "2", "--master-port", str(free_port())]
    return subprocess.Popen(
        [*torchrun, "-m", "scibind", "train", str(recipe), "--run-dir", str(run_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=subprocess_env(),
    )


def _one_process(recipe: Path, run_dir: Path, *overrides: str) -> subprocess.CompletedProcess:
    sets = [arg for o in overrides for arg in ("--set", o)]
    return subprocess.run(
        [sys.executable, "-m", "scibind", "train", str(recipe), "--run-dir", str(run_dir), *sets],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        timeout=300,
    )


def _train_both(recipe: Path, tmp_path: Path, local_batch: int) -> None:
    """Train ``recipe`` on 2 ranks of ``local_batch`` (``ddp/``) and on 1 process of 2x that (``single/``)."""
    two = _two_ranks(recipe, tmp_path / "ddp")
    one = _one_process(recipe, tmp_path / "single", f"train.batch_size={2 * local_batch}")
    out, _ = two.communicate(timeout=300)
    if two.returncode != 0 and "terminate called without an active exception" in out:
        # A rare abort of the waiting gloo rank seen once in CI (rank 1 blocked in the final barrier while
        # rank 0 evaluates); the run is repeated once in a fresh folder, any other failure fails the test.
        shutil.rmtree(tmp_path / "ddp", ignore_errors=True)
        two = _two_ranks(recipe, tmp_path / "ddp")
        out, _ = two.communicate(timeout=300)
    assert two.returncode == 0, out
    assert one.returncode == 0, one.stdout + one.stderr


def _weights(run_dir: Path, step: int) -> dict[str, torch.Tensor]:
    return load_file(str(run_dir / f"checkpoints/step-{step}/model.safetensors"))


def _assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-5), key


@pytest.mark.slow
@pytest.mark.distributed
def test_two_ranks_match_one_process_with_the_global_batch(write_recipe, tmp_path):
    recipe = write_recipe(train={"max_steps": 10, "checkpoint_every": 5, "batch_size": 16})
    _train_both(recipe, tmp_path, local_batch=16)

    state = json.loads((tmp_path / "ddp/checkpoints/step-10/state.json").read_text())
    assert state["world_size"] == 2 and state["global_batch_size"] == 32 and len(state["rng"]) == 2
    trained = _weights(tmp_path / "single", 10)
    _assert_same_weights(_weights(tmp_path / "ddp", 10), trained)
    initial = _weights(tmp_path / "single", 5)
    assert any(not torch.allclose(initial[k], trained[k]) for k in trained)  # it did train
    # Rank 0 alone writes the run folder and logs every step once.
    lines = (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()
    steps = [json.loads(line)["step"] for line in lines]
    assert steps == list(range(1, 11))


@pytest.mark.slow
@pytest.mark.distributed
def test_strategies_and_symile_under_two_ranks_match_one_process(write_recipe, tmp_path):
    """A locked, cached, initialised tower, the XBT term and three-view Symile, with 2 ranks and with 1."""
    data = {"dataset_kwargs": {"n": 300, "seed": 1, "captions": True}}
    old = write_recipe("old.yaml", data=data, train={"max_steps": 5, "checkpoint_every": 5})
    trained_old = _one_process(old, tmp_path / "old")
    assert trained_old.returncode == 0, trained_old.stdout + trained_old.stderr
    text = {"modality": "text", "encoder": "core/tiny-text", "encoder_kwargs": {"embed_dim": 16}}
    compatible = {"reference": str(tmp_path / "old"), "views": {"view_a": "view_a"}}
    recipe = write_recipe(
        "new.yaml",
        data=data,
        towers={"view_b": {"freeze": True}, "text": text},
        train={
            "max_steps": 10,
            "checkpoint_every": 5,
            "batch_size": 16,
            "init_from": str(tmp_path / "old"),
            "init_views": ["view_b"],
            "cache_frozen": True,
            "compatible": compatible,
        },
    )
    raw = yaml.safe_load(recipe.read_text())
    raw["objective"] = {"name": "core/symile"}  # replaces the tiny recipe's core/clip and its options
    recipe.write_text(yaml.safe_dump(raw))
    _train_both(recipe, tmp_path, local_batch=16)

    ddp, single = _weights(tmp_path / "ddp", 10), _weights(tmp_path / "single", 10)
    _assert_same_weights(ddp, single)
    old_weights = _weights(tmp_path / "old", 5)
    frozen = [k for k in old_weights if k.startswith("model.towers.view_b.")]
    assert frozen and all(torch.equal(ddp[k], old_weights[k]) for k in frozen)
    initial = _weights(tmp_path / "single", 5)
    assert any(
        not torch.allclose(initial[k], single[k]) for k in single if k.startswith("model.towers.text.")
    )
    log = [json.loads(line) for line in (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()]
    assert all("xbt/view_a" in entry["parts"] for entry in log)
    # Each rank computes half of Symile's rows; the logged loss and parts are still the global batch's.
    alone = [json.loads(line) for line in (tmp_path / "single" / "metrics.jsonl").read_text().splitlines()]
    for a, b in zip(log, alone, strict=True):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5)
        assert a["parts"] == pytest.approx(b["parts"], rel=1e-5)
    assert len(list((tmp_path / "ddp" / "cache").glob("view_b-*.safetensors"))) == 1
