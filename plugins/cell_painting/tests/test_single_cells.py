"""Single cells as the image unit: cell manifests, the cell reader, well-safe splits and well-level mAP."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scibind.data.manifest import read_manifest
from scibind.errors import ConfigError, DataError, ReadError
from scibind_cell_painting.cell_reader import CellReader, crop_around
from scibind_cell_painting.cells import crop_cells
from scibind_cell_painting.reader import FieldReader
from scibind_cell_painting.single_cells import single_cell_frame, single_cell_manifest
from scibind_cell_painting.synthetic import make_synthetic_plates
from scibind_testkit import ReaderContract

FIELD = "cellpainting/images/BR00143976_r03c03f03"
REAL_CHANNELS = {2: "ER", 3: "AGP", 4: "Mito", 5: "DNA", 6: "RNA"}  # ch1 is brightfield


def _real_field_row(shared_data_dir: Path) -> dict[str, str]:
    folder = shared_data_dir / FIELD
    row = {"id": "BR00143976_C03_s3", "well": "C03", "group": "BR00143976_C03", "split": "eval"}
    for token, channel in REAL_CHANNELS.items():
        row[f"cells.{channel}"] = str(folder / f"r03c03f03p01-ch{token}sk1fk1fl1.tiff")
    return row


def test_real_field_becomes_one_record_per_cellprofiler_nucleus(shared_data_dir):
    reader = FieldReader(cache_mb=64)
    cells = single_cell_frame(pd.DataFrame([_real_field_row(shared_data_dir)]), crop_px=96, reader=reader)
    reference = pd.read_parquet(shared_data_dir / FIELD / "BR00143976_shrunken.parquet")
    expected = reference[["Nuclei_Location_Center_Y", "Nuclei_Location_Center_X"]].to_numpy()
    found = cells[["cells.y_px", "cells.x_px"]].to_numpy()
    assert len(found) >= 5 and cells["id"].is_unique
    assert (cells["field_id"] == "BR00143976_C03_s3").all() and (cells["group"] == "BR00143976_C03").all()
    assert np.linalg.norm(expected[:, None] - found[None], axis=2).min(axis=1).max() < 20  # px
    # A cell record reads as the crop of the field around its centre, every channel, in canonical order.
    record = cells.iloc[0]
    value = {c.split(".", 1)[1]: record[c] for c in cells.columns if c.startswith("cells.")}
    sample = CellReader(crop_px=96, cache_mb=64).read(value, record_id=record["id"])
    field = reader.read({k: v for k, v in value.items() if k not in ("y_px", "x_px")}).data["pixels"]
    crops, kept = crop_cells(field.numpy(), found[:1], 96)
    assert kept.tolist() == [0] and sample.data["pixels"].shape == (5, 96, 96)
    assert np.array_equal(sample.data["pixels"].numpy(), crops[0])
    assert sample.meta["channels"] == ["DNA", "ER", "RNA", "AGP", "Mito"] and sample.meta["crop_px"] == 96


@settings(max_examples=60, deadline=None)
@given(
    y=st.floats(0, 19.99),
    x=st.floats(0, 23.99),
    crop_px=st.integers(1, 12),
)
def test_crop_around_is_crop_cells_inside_and_zero_padded_outside(y, x, crop_px):
    pixels = torch.arange(2 * 20 * 24, dtype=torch.float32).reshape(2, 20, 24) + 1
    crop = crop_around(pixels, y, x, crop_px)
    assert crop.shape == (2, crop_px, crop_px)
    crops, kept = crop_cells(pixels.numpy(), np.array([[y, x]]), crop_px)
    if len(kept):
        assert np.array_equal(crop.numpy(), crops[0])
    else:  # the crop leaves the field: what is inside is copied, the rest is zero
        top, left = round(y) - crop_px // 2, round(x) - crop_px // 2
        inside = [
            (i, j) for i in range(crop_px) for j in range(crop_px) if 0 <= top + i < 20 and 0 <= left + j < 24
        ]
        assert int((crop[0] != 0).sum()) == len(inside)
        for i, j in inside[:5]:
            assert crop[1, i, j] == pixels[1, top + i, left + j]


class TestCellReader(ReaderContract):
    reader_name = "cell_painting/cell"
    reader_kwargs = {"crop_px": 8}

    def make_valid_input(self, tmp_path: Path) -> dict[str, object]:
        import tifffile

        rng = np.random.default_rng(0)
        value: dict[str, object] = {"y_px": 9.6, "x_px": 4.2}
        for channel in ("DNA", "ER", "RNA", "AGP", "Mito"):
            path = tmp_path / f"{channel}.tiff"
            tifffile.imwrite(path, rng.integers(100, 4000, size=(20, 20)).astype(np.uint16), metadata=None)
            value[channel] = str(path)
        return value

    def make_bad_input(self, tmp_path: Path) -> dict[str, object]:
        return {**self.make_valid_input(tmp_path), "y_px": 25.0}  # outside the 20 x 20 field


def test_cell_reader_errors_name_the_record_and_the_fix(tmp_path, field_writer):
    paths = field_writer(tmp_path, size=20, tokens=(5,))
    with pytest.raises(ReadError, match="y_px") as info:
        CellReader(crop_px=8).read({"DNA": str(paths[5])}, record_id="rec-1")
    assert "rec-1" in str(info.value) and "single_cell_manifest" in str(info.value)
    with pytest.raises(ReadError, match="cell_painting/cell") as info:
        FieldReader().read({"DNA": str(paths[5]), "y_px": 3.0, "x_px": 3.0}, record_id="rec-2")
    assert "rec-2" in str(info.value)
    with pytest.raises(ConfigError, match="crop_px"):
        CellReader(crop_px=8, size=(10, 10))
    with pytest.raises(DataError, match="DNA"):
        frame = pd.DataFrame([{"id": "f1", "cells.ER": str(paths[5])}])
        single_cell_frame(frame)


def test_synthetic_cell_manifest_keeps_wells_whole(tmp_path, scibind_registry):
    kwargs = {"n_plates": 1, "n_compounds": 3, "wells_per_compound": 3, "eval_wells_per_compound": 1}
    cell_kwargs = {"unit": "cell", "size_px": 48, "crop_px": 20, "min_cell_distance_px": 11}
    manifest = read_manifest(make_synthetic_plates(tmp_path, **kwargs, **cell_kwargs))
    frame = manifest.frame
    fields = frame["field_id"].nunique()
    assert len(frame) > 2 * fields  # several cells per field
    assert frame.groupby("well_id")["split"].nunique().eq(1).all()  # a well is never split
    assert (frame["group"] == frame["well_id"]).all()
    corners = np.round(frame[["cells.y_px", "cells.x_px"]].astype(float).to_numpy()) - 10
    assert (corners >= 0).all() and (corners + 20 <= 48).all()  # crops of 20 px fit the 48 px fields
    reader = CellReader(crop_px=20)
    values = manifest.with_views(["cells"]).view_values("cells")
    a = reader.read(values[0], record_id=frame["id"][0], base_dir=manifest.base_dir)
    b = reader.read(values[1], record_id=frame["id"][1], base_dir=manifest.base_dir)
    assert a.data["pixels"].shape == (5, 20, 20) and not torch.equal(a.data["pixels"], b.data["pixels"])
    # The cell crop is centred on a nucleus: DNA is brighter in the middle than at the edge.
    dna = a.data["pixels"][0]
    assert dna[8:12, 8:12].mean() > dna[[0, -1]].mean()
    # The same layout written as a cell manifest from the field manifest, elsewhere (absolute paths).
    fields = tmp_path / "fields"
    field_manifest = make_synthetic_plates(fields, **kwargs, size_px=48, crop_px=20, min_cell_distance_px=11)
    out = single_cell_manifest(field_manifest, tmp_path / "elsewhere" / "cells.parquet", crop_px=20)
    cells = read_manifest(out).frame
    assert Path(cells["cells.DNA"].iloc[0]).is_absolute() and Path(cells["cells.DNA"].iloc[0]).is_file()
    assert set(cells["field_id"]) <= set(pd.read_csv(field_manifest)["id"])


def test_single_cells_train_above_chance_and_aggregate_per_well(tmp_path, scibind_registry):
    from scibind.train.recipe import load_recipe
    from scibind.train.trainer import train

    recipe = load_recipe(
        "cell_painting/synthetic-cells-clip",
        ["train.max_steps=60", "train.batch_size=48", "data.dataset_kwargs.n_plates=2"],
    )
    result = train(recipe, tmp_path / "run")
    metrics = json.loads((tmp_path / "run" / "eval" / "metrics.json").read_text())
    assert metrics == pytest.approx(result.metrics)
    cells, wells = "map/cells/perturbation", "map/cells@well_id/perturbation"
    assert metrics[f"{cells}/mAP"] > 2.0 * metrics[f"{cells}/mAP_chance"]
    assert metrics[f"{wells}/mAP"] > 2.0 * metrics[f"{wells}/mAP_chance"]
    # Well-level: one query per eval well (2 plates x 8 perturbations x 2 wells), many cells per query.
    assert metrics[f"{wells}/n_queries"] == 32 and metrics[f"{cells}/n_queries"] > 3 * 32
    assert metrics["zero_shot/cells/accuracy"] > 2.0 / 8
