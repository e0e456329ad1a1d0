"""``scibind pathology mil-train`` and ``heatmap`` end to end on the demo run and the real CMU slide."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from scibind.cli.main import main
from scibind.train.run import load_run
from scibind_pathology.features import extract_features, load_features
from scibind_pathology.mil import _read_labels, load_mil_model
from scibind_pathology.tiling import TilingConfig

Run = tuple[Path, dict[str, float]]


def scibind(args: list[str], capfd: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(args)
    out, err = capfd.readouterr()
    return int(info.value.code or 0), out, err


def red_minus_blue(image: np.ndarray, x: int, y: int, side: int, scale: float) -> float:
    cx, cy = int((x + side / 2) * scale), int((y + side / 2) * scale)
    return float(image[cy, cx, 0]) - float(image[cy, cx, 2])


def test_heatmap_of_a_run_record(demo_run: Run, tmp_path: Path, capfd: pytest.CaptureFixture[str]):
    run, _ = demo_run
    code, out, err = scibind(
        ["pathology", "heatmap", str(run), "slide_0003", "--out", str(tmp_path / "h.png"), "--json"], capfd
    )
    assert code == 0, err
    summary = json.loads(out)
    bag = load_features(run / "data" / "features" / "slide_0003.h5")
    assert (
        summary["n_tiles"] == len(bag.features) and summary["patch_size_level0"] == 96
    )  # 48 px at 1.0 / 0.5
    encoder = load_run(run).model.towers["slide"].encoder  # the weights, independently of the command
    with torch.no_grad():
        weights = encoder.attention({"features": torch.from_numpy(bag.features)})[0].numpy()
    top = int(np.argmax(weights))
    assert summary["top_tiles"][0] == {
        "x": int(bag.coords[top, 0]),
        "y": int(bag.coords[top, 1]),
        "weight": pytest.approx(float(weights[top]), abs=1e-6),
    }
    image = np.asarray(Image.open(tmp_path / "h.png").convert("RGB"))
    scale = image.shape[1] / 512
    low = int(np.argmin(weights))
    hot = red_minus_blue(image, *bag.coords[top], 96, scale)
    cold = red_minus_blue(image, *bag.coords[low], 96, scale)
    assert hot > cold + 50  # red over the most attended tile, blue over the least

    # the same slide named by its image file: features found through the manifest's slide_file column
    code, out, err = scibind(
        [
            "pathology",
            "heatmap",
            str(run),
            str(run / "data" / "slides" / "slide_0003.tif"),
            "--out",
            str(tmp_path / "h2.png"),
            "--json",
        ],
        capfd,
    )
    assert code == 0, err
    assert json.loads(out)["top_tiles"] == summary["top_tiles"]


def test_heatmap_on_the_real_cmu_slide(
    demo_run: Run, cmu_slide: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
):
    run, _ = demo_run
    tiling = TilingConfig(
        mpp=1.0, tile_size=48
    )  # the demo's tile features: pathology/tiny, 48 px at 1.0 µm/px
    cache = extract_features(cmu_slide, tmp_path, tiling=tiling, encoder_kwargs={"seed": 0})
    code, out, err = scibind(
        [
            "pathology",
            "heatmap",
            str(run),
            str(cmu_slide),
            "--features",
            str(cache),
            "--out",
            str(tmp_path / "c.png"),
            "--max-side",
            "400",
            "--json",
        ],
        capfd,
    )
    assert code == 0, err
    summary = json.loads(out)
    assert summary["n_tiles"] == len(load_features(cache).features) > 100
    assert summary["patch_size_level0"] == 96  # 48 px at 1.0 µm/px on a 0.499 µm/px scan
    assert Image.open(tmp_path / "c.png").size == (round(2220 * 400 / 2967), 400)


def test_heatmap_errors_name_the_fix(demo_run: Run, tmp_path: Path, capfd: pytest.CaptureFixture[str]):
    run, _ = demo_run
    code, _, err = scibind(
        ["pathology", "heatmap", str(run), "slide_9999", "--out", str(tmp_path / "x.png")], capfd
    )
    assert code == 2 and "slide_9999" in err and "record id" in err
    code, _, err = scibind(
        ["pathology", "heatmap", str(tmp_path), "slide_0001", "--out", str(tmp_path / "x.png")], capfd
    )
    assert code == 2 and "config.yaml" in err


def write_labels(path: Path, rows: list[tuple[str, str]], id_column: str = "slide_id") -> Path:
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["case_id", id_column, "label"])
        writer.writerows([("case", slide_id, label) for slide_id, label in rows])
    return path


def test_mil_train_then_heatmap(demo_run: Run, tmp_path: Path, capfd: pytest.CaptureFixture[str]):
    run, _ = demo_run
    with open(run / "data" / "manifest.csv", encoding="utf-8") as handle:
        records = list(csv.DictReader(handle))
    rows = [(r["id"], r["diagnosis"]) for r in records[:-1]]
    rows += [(records[-1]["id"], "a rare class"), ("slide_missing.svs", "lymphoma")]
    labels = write_labels(tmp_path / "labels.csv", rows)
    out = tmp_path / "mil"
    args = ["pathology", "mil-train", str(run / "data" / "features"), str(labels), "--out", str(out)]
    code, _, err = scibind([*args, "--folds", "3", "--epochs", "20", "--json"], capfd)
    assert code == 0, err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["missing_features"] == ["slide_missing.svs"]
    assert metrics["rare_class_slides"] == [records[-1]["id"]]
    assert (metrics["n"], metrics["n_classes"], metrics["folds"]) == (47, 4, 3)
    with open(out / "predictions.csv", encoding="utf-8") as handle:
        predictions = list(csv.DictReader(handle))
    assert len(predictions) == 47
    hits = np.mean([p["label"] == p["predicted"] for p in predictions])
    assert metrics["accuracy"] == pytest.approx(hits)
    assert metrics["accuracy"] >= 0.4  # 4 balanced diagnoses: chance 0.25

    model, config = load_mil_model(out)
    assert config["classes"] == sorted({label for _, label in rows[:-2]}) and config["in_dim"] == 32
    slide = run / "data" / records[0]["slide_file"]
    code, text, err = scibind(
        ["pathology", "heatmap", str(out), str(slide), "--json", "--out", str(tmp_path / "m.png")], capfd
    )
    assert code == 0, err
    summary = json.loads(text)
    assert summary["features"] == str(run.resolve() / "data" / "features" / f"{records[0]['id']}.h5")
    assert sum(summary["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    bag = load_features(summary["features"]).features
    with torch.no_grad():
        logits = model({"features": torch.from_numpy(bag)})
    assert summary["prediction"] == config["classes"][int(logits.argmax())]


def test_mil_train_errors_name_the_columns(demo_run: Run, tmp_path: Path, capfd: pytest.CaptureFixture[str]):
    run, _ = demo_run
    labels = write_labels(tmp_path / "labels.csv", [("slide_0000", "x")], id_column="slide")
    code, _, err = scibind(
        ["pathology", "mil-train", str(run / "data" / "features"), str(labels), "--out", str(tmp_path / "o")],
        capfd,
    )
    assert code == 2 and "slide_id or id" in err and "'case_id', 'slide', 'label'" in err
    labels = write_labels(tmp_path / "other.csv", [("nope", "x"), ("nada", "y")])
    code, _, err = scibind(
        ["pathology", "mil-train", str(run / "data" / "features"), str(labels), "--out", str(tmp_path / "o")],
        capfd,
    )
    assert code == 2 and "no feature file" in err and "nope.h5" in err


cells = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=8)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(cells, cells), min_size=1, max_size=6))
def test_labels_csv_round_trips(tmp_path_factory: pytest.TempPathFactory, rows: list[tuple[str, str]]):
    path = write_labels(tmp_path_factory.mktemp("labels") / "labels.csv", rows)
    expected = [(i.strip(), label.strip()) for i, label in rows if i.strip() and label.strip()]
    assert _read_labels(path, None, "label") == expected
