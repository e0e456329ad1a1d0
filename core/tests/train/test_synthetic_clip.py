"""The core demo recipe trains on CPU in seconds and ends far above chance; its run reads back."""

from __future__ import annotations

import json

import pytest
import torch
from scibind.errors import CheckpointError
from scibind.train import build_dataset, load_recipe, load_run, text_encoder_fn, train

# umap-learn (drawn by the report when installed) warns on import that TensorFlow is missing.
pytestmark = pytest.mark.filterwarnings("ignore:Tensorflow not installed:ImportWarning")


@pytest.fixture(scope="module")
def synthetic_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("synthetic-clip")
    return train(load_recipe("core/synthetic-clip"), run_dir)


@pytest.mark.slow
def test_synthetic_clip_trains_far_above_chance(synthetic_run):
    metrics = synthetic_run.metrics
    for direction in ("view_a->view_b", "view_b->view_a"):
        chance = metrics[f"{direction}/R@1_chance"]
        assert metrics[f"{direction}/R@1"] > 10 * chance
        assert metrics[f"{direction}/R@1"] > 0.5
        assert metrics[f"{direction}/MRR"] > 0.6
    assert metrics["linear_probe/view_a/label/accuracy"] > 0.6
    assert "knn/view_a/label/accuracy" in metrics and "geometry/view_a,view_b/gap" in metrics
    rows = [json.loads(line) for line in (synthetic_run.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == 300  # (its time is not asserted: tests never assert timings)
    assert rows[-1]["loss"] < rows[0]["loss"] / 4
    assert (synthetic_run.run_dir / "eval" / "metrics.json").is_file()
    assert synthetic_run.report_path is not None and synthetic_run.report_path.is_file()


@pytest.mark.slow
def test_load_run_rebuilds_the_trained_model(synthetic_run):
    run = load_run(synthetic_run.run_dir)
    assert run.step == 300 and not run.model.training
    assert run.recipe.name == "core/synthetic-clip"
    dataset = build_dataset(run.recipe, "eval")
    batch = dataset.collate([dataset[i] for i in range(8)])
    with torch.no_grad():
        z = run.model(batch)
    sims = z["view_a"] @ z["view_b"].T
    assert torch.equal(sims.argmax(dim=1), torch.arange(8))  # true pairs are each other's nearest
    assert text_encoder_fn(run) == (None, None)
    earlier = load_run(synthetic_run.run_dir, step=100)
    assert earlier.step == 100
    with pytest.raises(CheckpointError, match=r"steps \[100, 200, 300\]"):
        load_run(synthetic_run.run_dir, step=7)
    train_set = build_dataset(run.recipe, "train")
    assert len(train_set) + len(dataset) == 2000
    assert set(dataset.target_names) == {"label", "group"}
