from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file
from scibind.errors import CheckpointError, ConfigError
from scibind.train import load_recipe, train
from scibind.train.checkpoint import list_checkpoints


def _weights(run_dir, step):
    return load_file(str(run_dir / "checkpoints" / f"step-{step}" / "model.safetensors"))


def _metrics(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_run_folder_layout_and_metrics(write_recipe, tmp_path):
    run = tmp_path / "run"
    result = train(load_recipe(write_recipe(train={"accumulate": 2})), run)
    assert result.step == 10 and result.checkpoint == run / "checkpoints" / "step-10"
    assert [s for s, _ in list_checkpoints(run)] == [5, 10]
    assert (run / "config.yaml").is_file() and (run / "data" / "dataset.json").is_file()
    assert result.report_path == run / "report.html" and result.report_path.is_file()
    rows = _metrics(run)
    assert [r["step"] for r in rows] == list(range(1, 11))
    assert set(rows[0]) == {"step", "loss", "lr", "parts", "seconds"}
    assert rows[0]["lr"] == pytest.approx(0.001)
    assert "temperature" in rows[-1]["parts"]
    info = json.loads((run / "checkpoints" / "step-10" / "model.json").read_text())
    assert info["towers"]["view_a"]["encoder"]["name"] == "core/mlp"
    assert info["towers"]["view_a"]["encoder"]["distribution"] == "scibind-core"
    assert info["step"] == 10 and info["embed_dim"] == 16
    # The saved config is a loadable recipe whose manifest lives inside the run folder.
    saved = load_recipe(run / "config.yaml")
    assert saved.data.train == (run / "data" / "manifest.parquet").resolve()


def test_resume_from_an_earlier_checkpoint_is_bit_identical(write_recipe, tmp_path):
    recipe = load_recipe(write_recipe(towers={"view_a": {"encoder_kwargs": {"dropout": 0.3}}}))
    full = tmp_path / "full"
    train(recipe, full)
    cut = tmp_path / "cut"
    shutil.copytree(full, cut)
    shutil.rmtree(cut / "checkpoints" / "step-10")
    result = train(recipe, cut, resume=True)
    assert result.resumed_from == 5
    a, b = _weights(full, 10), _weights(cut, 10)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [r["loss"] for r in _metrics(full)] == [r["loss"] for r in _metrics(cut)]


def test_existing_run_needs_resume_and_the_same_model(write_recipe, tmp_path):
    path = write_recipe()
    run = tmp_path / "run"
    train(load_recipe(path), run)
    with pytest.raises(ConfigError, match="pass --resume"):
        train(load_recipe(path), run)
    with pytest.raises(ConfigError, match="embed_dim"):
        train(load_recipe(path, ["embed_dim=8"]), run, resume=True)
    with pytest.raises(CheckpointError, match="global batch of 32"):
        train(load_recipe(path, ["train.batch_size=16", "train.max_steps=12"]), run, resume=True)
    again = train(load_recipe(path), run, resume=True)
    assert again.resumed_from == 10 and again.final_loss is None
    assert len(_metrics(run)) == 10


def test_resume_without_any_checkpoint_starts_fresh(write_recipe, tmp_path):
    result = train(load_recipe(write_recipe(), ["train.max_steps=2"]), tmp_path / "run", resume=True)
    assert result.resumed_from is None and result.step == 2


def test_bf16_autocast_worker_processes_and_no_clipping(write_recipe, tmp_path):
    recipe = load_recipe(
        write_recipe(),
        [
            "train.max_steps=3",
            "train.precision=bf16",
            "data.num_workers=1",
            "train.grad_clip=null",
            "train.schedule=constant",
        ],
    )
    result = train(recipe, tmp_path / "run")
    assert result.step == 3 and result.final_loss is not None and result.final_loss == result.final_loss
    assert all(torch.isfinite(v).all() for v in _weights(tmp_path / "run", 3).values())


def test_per_tower_learning_rate_scales(write_recipe, tmp_path):
    from scibind.align.model import build_model
    from scibind.train.run import build_objective, tower_configs
    from scibind.train.trainer import parameter_groups

    plain = load_recipe(write_recipe())
    model = build_model(tower_configs(plain), plain.embed_dim)
    groups = parameter_groups(model, build_objective(plain), plain, 0.1)
    assert [(g["weight_decay"], g["lr_scale"]) for g in groups] == [(0.1, 1.0), (0.0, 1.0)]
    # view_a's tower does not move at scale 0; view_b's encoder does not, its projection does.
    recipe = load_recipe(
        write_recipe(towers={"view_a": {"lr_scale": 0.0}, "view_b": {"encoder_lr_scale": 0.0}})
    )
    run = tmp_path / "run"
    train(recipe, run)
    first, last = _weights(run, 5), _weights(run, 10)
    for key in first:
        moved = not torch.equal(first[key], last[key])
        if key.startswith(("model.towers.view_a.", "model.towers.view_b.encoder.")):
            assert not moved, key
        elif key.startswith("model.towers.view_b.projection."):
            assert moved, key
    assert any(k.startswith("model.towers.view_b.projection.") for k in first)
