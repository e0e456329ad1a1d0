"""The demo recipe end to end: synthetic plates written as TIFFs, trained and evaluated above chance."""

from __future__ import annotations

import json

import pytest


@pytest.mark.slow
def test_demo_recipe_trains_above_chance(tmp_path, scibind_registry):
    from scibind.train.recipe import load_recipe
    from scibind.train.trainer import train

    recipe = load_recipe(
        "cell_painting/synthetic-plates-clip",
        ["train.max_steps=60", "train.batch_size=48", "data.dataset_kwargs.n_plates=2"],
    )
    result = train(recipe, tmp_path / "run")
    metrics = json.loads((tmp_path / "run" / "eval" / "metrics.json").read_text())
    assert metrics == pytest.approx(result.metrics)
    n_classes = 8  # 7 compounds and DMSO
    assert metrics["zero_shot/cells/accuracy"] > 2.0 / n_classes
    for key in ("map/cells/perturbation", "map/cells->text/perturbation", "map/cells@well_id/perturbation"):
        assert metrics[f"{key}/mAP"] > 1.5 * metrics[f"{key}/mAP_chance"], key
    assert 0.0 <= metrics["batch/cells/plate/knn_accuracy"] <= 1.0
    assert (tmp_path / "run" / "data" / "images" / "SYN00002").is_dir()
    assert (tmp_path / "run" / "report.html").is_file()


def test_synthetic_plates_are_deterministic_real_files(tmp_path):
    import tifffile
    from scibind_cell_painting.synthetic import make_synthetic_plates

    kwargs = {"n_plates": 1, "n_compounds": 2, "wells_per_compound": 2, "eval_wells_per_compound": 1}
    a = make_synthetic_plates(tmp_path / "a", **kwargs)
    b = make_synthetic_plates(tmp_path / "b", **kwargs)
    assert a.read_bytes() == b.read_bytes()
    first = sorted((tmp_path / "a" / "images" / "SYN00001").iterdir())[0]
    assert tifffile.imread(first).dtype.name == "uint16"
    assert first.read_bytes() == (tmp_path / "b" / "images" / "SYN00001" / first.name).read_bytes()
