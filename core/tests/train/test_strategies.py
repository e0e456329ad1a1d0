"""Training strategies: locked towers with a feature cache (LiT), progressive alignment, XBT."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from safetensors.torch import load_file
from scibind.builtin.vector_encoders import MLPEncoder
from scibind.errors import CheckpointError, ConfigError
from scibind.train import load_recipe, train
from scibind.train.strategies import FrozenFeatureCache, encoder_fingerprint

from .conftest import TINY, _merge

DATA = {"dataset": "core/synthetic-pairs", "dataset_kwargs": {"n": 400, "seed": 1, "captions": True}}
VIEW_A = TINY["towers"]["view_a"]
VIEW_B = TINY["towers"]["view_b"]
FAST = {"batch_size": 64, "max_steps": 120, "checkpoint_every": 1000, "lr": 0.005, "log_every": 20}


def _recipe(tmp: Path, name: str, **sections: Any) -> Any:
    raw = _merge(TINY, {"data": DATA, "train": FAST, **sections})
    if "towers" in sections:  # replace, not merge, the towers
        raw["towers"] = copy.deepcopy(sections["towers"])
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return load_recipe(path)


def _tower_weights(run: Path, view: str) -> dict[str, torch.Tensor]:
    ckpts = sorted((run / "checkpoints").iterdir(), key=lambda p: int(p.name.split("-")[1]))
    weights = load_file(str(ckpts[-1] / "model.safetensors"))
    prefix = f"model.towers.{view}."
    return {k[len(prefix) :]: v for k, v in weights.items() if k.startswith(prefix)}


@pytest.fixture(scope="module")
def base_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An aligned view_a <-> view_b model (the "old" model of the progressive and XBT tests)."""
    tmp = tmp_path_factory.mktemp("base")
    run = tmp / "run"
    train(_recipe(tmp, "base", train={**FAST, "max_steps": 150}), run)
    return run


def test_locked_tower_is_unchanged_and_encoded_once_per_record(tmp_path, monkeypatch):
    calls: list[int] = []
    original = MLPEncoder.forward

    def counting(self: MLPEncoder, x: torch.Tensor) -> torch.Tensor:
        if self.in_dim == 32:  # view_a's encoder
            calls.append(len(x))
        return original(self, x)

    monkeypatch.setattr(MLPEncoder, "forward", counting)
    towers = {"view_a": {**VIEW_A, "freeze": True}, "view_b": VIEW_B}
    recipe = _recipe(
        tmp_path,
        "lit",
        towers=towers,
        train={**FAST, "max_steps": 25, "checkpoint_every": 5, "batch_size": 32, "cache_frozen": True},
    )
    run = tmp_path / "run"
    train(recipe, run)
    first = load_file(str(run / "checkpoints" / "step-5" / "model.safetensors"))
    last = load_file(str(run / "checkpoints" / "step-25" / "model.safetensors"))
    a_keys = [k for k in last if k.startswith("model.towers.view_a.")]
    b_keys = [k for k in last if k.startswith("model.towers.view_b.")]
    assert a_keys and all(torch.equal(first[k], last[k]) for k in a_keys)
    assert not all(torch.equal(first[k], last[k]) for k in b_keys)
    # 25 steps x 32 = 800 draws over 320 training records (about 2.5 epochs): each encoded exactly once.
    cached = list((run / "cache").glob("view_a-*.safetensors"))
    assert len(cached) == 1
    n_cached = len(load_file(str(cached[0]))["features"])
    assert sum(calls) == n_cached <= 320 and n_cached > 25 * 32 / 3
    # A resumed run reads the cache from disk: no view_a forward at all, and the same final weights.
    cut = tmp_path / "cut"
    shutil.copytree(run, cut)
    shutil.rmtree(cut / "checkpoints" / "step-25")
    calls.clear()
    train(recipe, cut, resume=True)
    assert calls == []
    again = load_file(str(cut / "checkpoints" / "step-25" / "model.safetensors"))
    assert all(torch.equal(last[k], again[k]) for k in last)


def test_feature_cache_is_keyed_by_the_encoders_weights(tmp_path):
    encoder = MLPEncoder(in_dim=4, embed_dim=3, hidden_dim=5)
    print_a = encoder_fingerprint(encoder, {"encoder": "core/mlp"})
    cache = FrozenFeatureCache({"v": print_a}, tmp_path)
    cache.rows["v"]["r1"] = torch.ones(3)
    cache.save()
    assert FrozenFeatureCache({"v": print_a}, tmp_path).rows["v"].keys() == {"r1"}
    with torch.no_grad():
        next(encoder.parameters()).add_(1e-3)
    print_b = encoder_fingerprint(encoder, {"encoder": "core/mlp"})
    assert print_b != print_a
    assert encoder_fingerprint(encoder, {"encoder": "core/mlp", "kwargs": {"x": 1}}) != print_b
    assert FrozenFeatureCache({"v": print_b}, tmp_path).rows["v"] == {}


def test_progressive_alignment_adds_a_modality_without_touching_the_aligned_towers(tmp_path, base_run):
    towers = {
        "view_a": {**VIEW_A, "freeze": True},
        "view_b": {**VIEW_B, "freeze": True},
        "text": {"modality": "text", "encoder": "core/tiny-text", "encoder_kwargs": {"embed_dim": 32}},
    }
    recipe = _recipe(
        tmp_path,
        "progressive",
        towers=towers,
        objective={
            "name": "core/clip",
            "pairs": [["text", "view_a"]],
            "kwargs": {"positive_target": "label"},
        },
        train={**FAST, "init_from": str(base_run), "cache_frozen": True, "max_steps": 100},
        eval={
            "tasks": [
                {
                    "name": "core/zero-shot",
                    "label": "label",
                    "view": "view_a",
                    "templates": ["a sample of {}"],
                },
                {
                    "name": "core/zero-shot",
                    "label": "label",
                    "view": "view_b",
                    "templates": ["a sample of {}"],
                },
            ]
        },
    )
    result = train(recipe, tmp_path / "run")
    for view in ("view_a", "view_b"):
        old, new = _tower_weights(base_run, view), _tower_weights(tmp_path / "run", view)
        assert old.keys() == new.keys() and all(torch.equal(old[k], new[k]) for k in old)
    # 5 classes: chance is 0.2. view_b was never paired with text, yet inherits the alignment through view_a.
    assert result.metrics["zero_shot/view_a/accuracy"] > 0.8, result.metrics
    assert result.metrics["zero_shot/view_b/accuracy"] > 0.6, result.metrics


def test_backward_compatible_encoder_queries_the_old_gallery(tmp_path, base_run):
    new_a = {**VIEW_A, "encoder_kwargs": {"in_dim": 32, "embed_dim": 48, "hidden_dim": 64, "n_layers": 3}}
    towers = {"view_a": new_a, "view_b": {**VIEW_B, "freeze": True}}
    compatible = {"reference": str(base_run), "views": {"view_a": "view_a"}}
    recipe = _recipe(
        tmp_path,
        "xbt",
        towers=towers,
        train={**FAST, "init_from": str(base_run), "init_views": ["view_b"], "compatible": compatible},
    )
    result = train(recipe, tmp_path / "run")
    metrics = result.metrics
    # The gallery is the old model's view_b embeddings of the 80 evaluation records (chance R@1 = 1/80).
    assert metrics["xbt/view_a->view_b/R@1"] > 0.3, metrics
    assert metrics["xbt/view_a->view_b/R@5"] > 0.7, metrics
    assert metrics["xbt/view_a->view_a/R@1"] > 0.3, metrics
    assert "xbt/old:view_a->view_b/R@1" in metrics


def test_compatibility_term_with_grad_cache_equals_the_plain_step(tmp_path, base_run):
    towers = {"view_a": VIEW_A, "view_b": {**VIEW_B, "freeze": True}}
    compatible = {"reference": str(base_run), "views": {"view_a": "view_a"}, "weight": 2.0}
    options = {**FAST, "max_steps": 6, "checkpoint_every": 6, "init_from": str(base_run)}
    options.update(init_views=["view_b"], compatible=compatible)
    runs = {}
    for name, extra in {"plain": {}, "cached": {"grad_cache": True, "grad_cache_chunk": 24}}.items():
        recipe = _recipe(tmp_path, name, towers=towers, train={**options, **extra}, eval={"tasks": []})
        train(recipe, tmp_path / name)
        runs[name] = _tower_weights(tmp_path / name, "view_a")
    for key, value in runs["plain"].items():
        torch.testing.assert_close(runs["cached"][key], value, rtol=1e-4, atol=1e-5)


def test_strategy_options_are_validated(tmp_path, base_run):
    with pytest.raises(ConfigError, match="init_views"):
        _recipe(tmp_path, "bad1", train={**FAST, "init_views": ["nope"]})
    with pytest.raises(ConfigError, match="compatible"):
        _recipe(tmp_path, "bad2", train={**FAST, "compatible": {"reference": ".", "views": {"x": "y"}}})
    wrong = {
        "view_a": {**VIEW_A, "encoder_kwargs": {**VIEW_A["encoder_kwargs"], "hidden_dim": 8}},
        "view_b": VIEW_B,
    }
    with pytest.raises(CheckpointError, match="does not fit"):
        train(
            _recipe(tmp_path, "bad3", towers=wrong, train={**FAST, "init_from": str(base_run)}),
            tmp_path / "r",
        )
