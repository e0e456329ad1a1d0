from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from scibind.builtin.readers import ImageReader, TextReader, VectorReader
from scibind.data.dataset import PairedDataset, ViewConfig, default_reader
from scibind.data.manifest import read_manifest
from scibind.data.types import Batch
from scibind.errors import ConfigError, DataError, ReadError, ShapeError


@pytest.fixture
def manifest_path(tmp_path: Path) -> Path:
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "b.txt").write_text("  from a file \n", encoding="utf-8")
    rows = [
        {
            "id": "a",
            "text": "inline caption",
            "vec": json.dumps([1, 2, 3]),
            "label": "cat",
            "group": "p2",
            "split": "train",
        },
        {"id": "b", "text": "notes/b.txt", "vec": "", "label": "dog", "group": "p1", "split": "train"},
        {"id": "c", "text": "", "vec": json.dumps([4, 5, 6]), "label": "", "group": "p3", "split": "eval"},
        {"id": "d", "text": "", "vec": "", "label": "emu", "group": "", "split": "eval"},
    ]
    path = tmp_path / "m.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_items_hold_data_or_none_and_integer_targets(manifest_path):
    ds = PairedDataset(read_manifest(manifest_path), {"text": "text", "vec": "vector"}, labels=["label"])
    assert len(ds) == 4
    assert ds.vocab == {"label": ["cat", "dog", "emu"], "group": ["p1", "p2", "p3"]}
    a, b, c, d = (ds[i] for i in range(4))
    assert a["id"] == "a" and a["views"]["text"] == "inline caption"
    assert torch.equal(a["views"]["vec"], torch.tensor([1.0, 2.0, 3.0]))
    assert b["views"] == {"text": "from a file", "vec": None}
    assert c["views"]["text"] is None
    assert d["views"] == {"text": None, "vec": None}
    assert [x["targets"] for x in (a, b, c, d)] == [
        {"label": 0, "group": 1},
        {"label": 1, "group": 0},
        {"label": -1, "group": 2},
        {"label": 2, "group": -1},
    ]
    assert ds.label_values("label") == ["cat", "dog", None, "emu"]
    assert ds.label_values("group") == ["p2", "p1", "p3", None]
    unlabelled = PairedDataset(read_manifest(manifest_path), {"vec": "vector"})
    assert unlabelled.target_names == ("group",)
    assert unlabelled.label_values("text") == ["inline caption", "notes/b.txt", None, None]
    with pytest.raises(KeyError, match="'vec' is not a label column"):
        unlabelled.label_values("vec")
    assert ds[-1]["id"] == "d"
    with pytest.raises(IndexError):
        ds[4]


def test_collate_builds_presence_masks_and_present_only_batches(manifest_path):
    ds = PairedDataset(read_manifest(manifest_path), {"text": "text", "vec": "vector"}, labels=["label"])
    batch = ds.collate([ds[i] for i in range(4)])
    assert isinstance(batch, Batch)
    assert batch.ids == ["a", "b", "c", "d"]
    assert batch.present["text"].tolist() == [True, True, False, False]
    assert batch.present["vec"].tolist() == [True, False, True, False]
    assert batch.views["text"].data == ["inline caption", "from a file"]
    assert batch.views["text"].index.dtype == torch.int64 and batch.views["text"].index.tolist() == [0, 1]
    assert torch.equal(batch.views["vec"].data, torch.tensor([[1.0, 2, 3], [4, 5, 6]]))
    assert batch.views["vec"].index.tolist() == [0, 2]
    assert batch.targets["label"].dtype == torch.int64 and batch.targets["label"].tolist() == [0, 1, -1, 2]
    assert batch.targets["group"].tolist() == [1, 0, 2, -1]


def test_batch_where_a_view_is_absent_everywhere(manifest_path):
    ds = PairedDataset(read_manifest(manifest_path), {"text": "text", "vec": "vector"})
    batch = ds.collate([ds[3]])
    assert set(batch.views) == set()
    assert batch.present["text"].tolist() == [False] and batch.present["vec"].tolist() == [False]
    assert batch.targets["group"].tolist() == [-1]


def test_vocab_comes_from_the_whole_file_and_can_be_given(manifest_path):
    manifest = read_manifest(manifest_path)
    eval_ds = PairedDataset(manifest.select("eval"), {"vec": "vector"}, labels=["label"])
    assert eval_ds.vocab["label"] == ["cat", "dog", "emu"]
    assert [eval_ds[i]["targets"]["label"] for i in range(2)] == [-1, 2]
    given = PairedDataset(
        manifest.select("eval"), {"vec": "vector"}, labels=["label"], vocab={"label": ["emu", "zebra"]}
    )
    assert [given[i]["targets"]["label"] for i in range(2)] == [-1, 0]


def test_transforms_and_explicit_view_configs(manifest_path):
    views = {"vec": ViewConfig("vec", "vector", VectorReader(dim=3))}
    ds = PairedDataset(read_manifest(manifest_path), views, transforms={"vec": lambda x: x * 2})
    assert ds[0]["views"]["vec"].tolist() == [2.0, 4.0, 6.0]
    with pytest.raises(ConfigError, match=r"unknown view\(s\) \['txt'\]"):
        PairedDataset(read_manifest(manifest_path), views, transforms={"txt": str})
    with pytest.raises(ConfigError, match="use one name"):
        PairedDataset(read_manifest(manifest_path), {"v": ViewConfig("vec", "vector", VectorReader())})


def test_view_list_means_view_name_is_modality(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text('id,text,vector\na,hi,"[1, 2]"\n', encoding="utf-8")
    ds = PairedDataset(read_manifest(path), ["text", "vector"])
    assert ds.views["vector"].modality == "vector"
    assert ds[0]["views"]["vector"].tolist() == [1.0, 2.0]


def test_read_errors_name_manifest_record_and_view(manifest_path, tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text('id,vec\nok,"[1, 2]"\nbad,"[1, NaN]"\nnofile,missing.npy\n', encoding="utf-8")
    ds = PairedDataset(read_manifest(path), {"vec": "vector"})
    with pytest.raises(ReadError) as info:
        ds[1]
    assert info.value.path == str(path) and info.value.record == "bad"
    assert "view 'vec'" in str(info.value) and "non-finite value(s) (NaN/inf), first at position 1" in str(
        info.value
    )
    with pytest.raises(ReadError) as info:
        ds[2]
    assert info.value.record == "nofile" and str(tmp_path / "missing.npy") in str(info.value)


def test_shape_errors_name_view_and_records(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text('id,vec\na,"[1, 2]"\nb,"[1, 2, 3]"\n', encoding="utf-8")
    ds = PairedDataset(read_manifest(path), {"vec": "vector"})
    with pytest.raises(ShapeError, match=r"view 'vec' \(records 'a', 'b'\).*item 1 has \(3,\)"):
        ds.collate([ds[0], ds[1]])


def test_bad_configuration(manifest_path):
    manifest = read_manifest(manifest_path)
    with pytest.raises(DataError, match="no label column 'species'"):
        PairedDataset(manifest, {"vec": "vector"}, labels=["species"])
    with pytest.raises(DataError, match="no column for view"):
        PairedDataset(manifest, {"image": "image"})
    with pytest.raises(ConfigError, match="no installed reader produces modality 'spectrum'"):
        PairedDataset(manifest, {"vec": "spectrum"})
    with pytest.raises(ConfigError, match="at least one view"):
        PairedDataset(manifest, {})


def test_default_reader_picks_core_readers():
    assert isinstance(default_reader("text"), TextReader)
    assert isinstance(default_reader("vector"), VectorReader)
    assert isinstance(default_reader("image"), ImageReader)


def test_images_through_a_dataloader(tmp_path):
    for i, size in enumerate([(6, 4), (8, 5)]):
        Image.fromarray(np.full(size[::-1], 50 * (i + 1), dtype=np.uint8)).save(tmp_path / f"{i}.png")
    path = tmp_path / "m.csv"
    path.write_text("id,img\nx,0.png\ny,1.png\nz,\n", encoding="utf-8")
    views = {"img": ViewConfig("img", "image", ImageReader(size=(4, 4)))}
    ds = PairedDataset(read_manifest(path), views)
    loader = torch.utils.data.DataLoader(ds, batch_size=3, collate_fn=ds.collate)
    batch = next(iter(loader))
    assert batch.views["img"].data.shape == (2, 1, 4, 4)
    assert batch.present["img"].tolist() == [True, True, False]
    np.testing.assert_allclose(batch.views["img"].data[:, 0, 0, 0].numpy(), [50 / 255, 100 / 255], rtol=1e-6)
