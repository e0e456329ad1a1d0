from __future__ import annotations

import json
import random
import shutil

import numpy as np
import pytest
import torch
from scibind.errors import CheckpointError
from scibind.train.checkpoint import (
    TrainingState,
    capture_rng_state,
    latest_checkpoint,
    list_checkpoints,
    load_model_state,
    load_training_state,
    restore_rng_state,
    save_checkpoint,
    verify_checkpoint,
)


class Objective(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.logit_scale = torch.nn.Parameter(torch.tensor(2.0))


def _parts(seed: int = 0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))
    objective = Objective()
    params = [*model.parameters(), *objective.parameters()]
    optimizer = torch.optim.AdamW(params, lr=0.1, betas=(0.8, 0.9))
    return model, objective, optimizer


def _take_step(model, objective, optimizer):
    loss = model(torch.randn(5, 4)).pow(2).sum() * objective.logit_scale
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()


def _save(run_dir, step, model, objective, optimizer):
    state = TrainingState(step=step, world_size=1, global_batch_size=8, rng=[capture_rng_state()])
    return save_checkpoint(
        run_dir,
        step,
        model=model,
        objective=objective,
        optimizer=optimizer,
        info={"recipe": "t"},
        state=state,
    )


def test_round_trip_restores_weights_optimizer_and_rng(tmp_path):
    model, objective, optimizer = _parts()
    _take_step(model, objective, optimizer)
    random.seed(3)
    np.random.seed(4)
    path = _save(tmp_path, 1, model, objective, optimizer)
    expected = (random.random(), np.random.rand(), torch.rand(3))
    _take_step(model, objective, optimizer)
    after = {k: v.clone() for k, v in model.state_dict().items()}

    model2, objective2, optimizer2 = _parts(seed=1)
    info = load_model_state(path, model2, objective2)
    assert info == {"recipe": "t", "step": 1}
    state = load_training_state(path, optimizer2)
    assert (state.step, state.world_size, state.global_batch_size) == (1, 1, 8)
    restore_rng_state(state.rng[0])
    assert (random.random(), np.random.rand()) == expected[:2]
    assert torch.equal(torch.rand(3), expected[2])
    torch.manual_seed(123)  # the step's input must not depend on the restored RNG for this comparison
    _take_step(model2, objective2, optimizer2)
    model3, objective3, optimizer3 = _parts(seed=1)
    load_model_state(path, model3, objective3)
    load_training_state(path, optimizer3)
    torch.manual_seed(123)
    _take_step(model3, objective3, optimizer3)
    for key, value in model2.state_dict().items():
        assert torch.equal(value, model3.state_dict()[key])
    assert optimizer2.param_groups[0]["betas"] == (0.8, 0.9)
    assert set(after) == set(model2.state_dict())


def test_files_are_safetensors_and_json_with_a_complete_marker(tmp_path):
    model, objective, optimizer = _parts()
    _take_step(model, objective, optimizer)
    path = _save(tmp_path, 5, model, objective, optimizer)
    assert path == tmp_path / "checkpoints" / "step-5"
    assert sorted(p.name for p in path.iterdir()) == [
        "COMPLETE",
        "model.json",
        "model.safetensors",
        "optimizer.safetensors",
        "state.json",
    ]
    record = verify_checkpoint(path)
    assert set(record["files"]) == {"model.json", "model.safetensors", "optimizer.safetensors", "state.json"}
    assert json.loads((path / "state.json").read_text())["step"] == 5
    assert not list((tmp_path / "checkpoints").glob("*.tmp"))


def test_incomplete_and_corrupt_checkpoints_are_skipped_or_rejected(tmp_path):
    model, objective, optimizer = _parts()
    good = _save(tmp_path, 10, model, objective, optimizer)
    torn = _save(tmp_path, 20, model, objective, optimizer)
    (torn / "COMPLETE").unlink()
    truncated = _save(tmp_path, 30, model, objective, optimizer)
    data = (truncated / "model.safetensors").read_bytes()
    (truncated / "model.safetensors").write_bytes(data[: len(data) // 2])
    flipped = _save(tmp_path, 40, model, objective, optimizer)
    shutil.copytree(good, tmp_path / "checkpoints" / "step-50.tmp")
    raw = bytearray((flipped / "optimizer.safetensors").read_bytes())
    raw[-1] ^= 0xFF
    (flipped / "optimizer.safetensors").write_bytes(bytes(raw))

    assert [s for s, _ in list_checkpoints(tmp_path)] == [10, 40]
    with pytest.raises(CheckpointError, match=r"step-20 is incomplete"):
        load_model_state(torn, model)
    with pytest.raises(CheckpointError, match=r"step-30: model.safetensors is missing or truncated"):
        load_model_state(truncated, model)
    with pytest.raises(CheckpointError, match=r"step-40: optimizer.safetensors does not match its sha256"):
        load_training_state(flipped, optimizer)
    with pytest.raises(CheckpointError, match=r"does not exist"):
        verify_checkpoint(tmp_path / "checkpoints" / "step-99")
    shutil.rmtree(flipped)
    assert latest_checkpoint(tmp_path) == good
    assert latest_checkpoint(tmp_path / "empty") is None


def test_weights_that_do_not_fit_are_a_checkpoint_error(tmp_path):
    model, objective, optimizer = _parts()
    path = _save(tmp_path, 1, model, objective, optimizer)
    other = torch.nn.Sequential(torch.nn.Linear(4, 5))
    with pytest.raises(CheckpointError, match=r"step-1: the model weights do not fit"):
        load_model_state(path, other)


def test_overwriting_a_step_replaces_it_atomically(tmp_path):
    model, objective, optimizer = _parts()
    _save(tmp_path, 3, model, objective, optimizer)
    with torch.no_grad():
        model[0].weight.add_(1.0)
    path = _save(tmp_path, 3, model, objective, optimizer)
    fresh, _, _ = _parts(seed=2)
    load_model_state(path, fresh)
    assert torch.equal(fresh[0].weight, model[0].weight)
    assert sorted(p.name for p in path.parent.iterdir()) == ["step-3"]
