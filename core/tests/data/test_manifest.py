from __future__ import annotations

import json
import string
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scibind.data.manifest import Manifest, ManifestSchema, is_missing, read_manifest
from scibind.errors import DataError, ReadError

CSV = (
    "id,image,text,label,split,group\n"
    "a,img/a.png,hello,cat,train,p1\nb,,world,dog,train,p1\nc,img/c.png,,cat,eval,p2\n"
)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_csv_roles_and_missing_views(tmp_path):
    m = read_manifest(write(tmp_path / "m.csv", CSV), views=["image", "text"])
    assert len(m) == 3
    assert m.ids == ["a", "b", "c"]
    assert m.views == ("image", "text")
    assert m.label_columns == ("label",)
    assert m.base_dir == tmp_path.resolve()
    assert m.view_values("image") == ["img/a.png", None, "img/c.png"]
    assert m.present("text").tolist() == [True, True, False]
    assert m.splits == ["eval", "train"]


def test_views_none_leaves_every_non_reserved_column_a_label(tmp_path):
    m = read_manifest(write(tmp_path / "m.csv", CSV))
    assert m.views == ()
    assert m.label_columns == ("image", "text", "label")
    bound = m.with_views(["text"])
    assert bound.views == ("text",)
    assert bound.label_columns == ("image", "label")


def test_ids_and_labels_stay_text(tmp_path):
    m = read_manifest(write(tmp_path / "m.csv", "id,v,label\n007,x,01\n8,y,2\n"), views=["v"])
    assert m.ids == ["007", "8"]
    assert m.frame["label"].tolist() == ["01", "2"]


def test_tsv_gz_and_jsonl_equal_csv(tmp_path):
    frame = pd.DataFrame({"id": ["a", "b"], "v": ["x", None], "label": ["p", "q"]})
    frame.to_csv(tmp_path / "m.tsv.gz", sep="\t", index=False)
    with open(tmp_path / "m.jsonl", "w") as f:
        f.write('{"id": "a", "v": "x", "label": "p"}\n\n{"id": "b", "v": null, "label": "q"}\n')
    for name in ("m.tsv.gz", "m.jsonl"):
        m = read_manifest(tmp_path / name, views=["v"])
        assert m.ids == ["a", "b"]
        assert m.view_values("v") == ["x", None]
        assert m.label_columns == ("label",)


def test_parquet_list_columns_and_integer_ids(tmp_path):
    table = pa.table(
        {
            "id": pa.array([10, 11, 12]),
            "vec": pa.array([[1.0, 2.0], None, [3.0, 4.5]], type=pa.list_(pa.float32())),
            "label": pa.array(["x", None, "y"]),
        }
    )
    pq.write_table(table, tmp_path / "m.parquet")
    m = read_manifest(tmp_path / "m.parquet", views=["vec"])
    assert m.ids == ["10", "11", "12"]
    values = m.view_values("vec")
    assert values[1] is None
    np.testing.assert_array_equal(np.asarray(values[2]), np.array([3.0, 4.5], dtype=np.float32))


def test_field_views_give_dicts_and_are_absent_only_when_all_fields_are(tmp_path):
    text = "id,mol.smiles,mol.name,y\na,CCO,ethanol,1\nb,,water,0\nc,,,1\n"
    m = read_manifest(write(tmp_path / "m.csv", text), views=["mol"])
    assert m.columns_of("mol") == ["mol.smiles", "mol.name"]
    assert m.view_values("mol") == [
        {"smiles": "CCO", "name": "ethanol"},
        {"smiles": None, "name": "water"},
        None,
    ]
    assert m.label_columns == ("y",)


def test_missing_view_error_lists_available_columns(tmp_path):
    with pytest.raises(DataError) as info:
        read_manifest(write(tmp_path / "m.csv", CSV), views=["image", "wsi"])
    message = str(info.value)
    assert "'wsi'" in message and "'wsi.<field>'" in message
    assert "available columns: id, image, text, label, split, group" in message
    assert "'image'" not in message.split("available")[0]


def test_invalid_view_names_are_rejected(tmp_path):
    path = write(tmp_path / "m.csv", CSV)
    with pytest.raises(DataError, match="reserved column"):
        read_manifest(path, views=["group"])
    with pytest.raises(DataError, match=r"without '\.'"):
        read_manifest(path, views=["a.b"])
    with pytest.raises(ValueError):
        ManifestSchema(views=("x", "x"))


def test_duplicate_ids_name_rows_and_lines(tmp_path):
    text = "id,v\na,1\nb,2\na,3\nc,4\nb,5\n"
    with pytest.raises(DataError) as info:
        read_manifest(write(tmp_path / "m.csv", text))
    message = str(info.value)
    assert (
        "'a' at data row 1 (line 2 of the file, counting the header as line 1), data row 3 (line 4" in message
    )
    assert "'b' at data row 2 (line 3" in message and "data row 5 (line 6" in message
    assert "'c'" not in message


def test_duplicate_ids_in_jsonl_name_file_lines(tmp_path):
    path = write(tmp_path / "m.jsonl", '{"id": "a"}\n\n{"id": "a"}\n')
    with pytest.raises(
        DataError, match=r"data row 1 \(line 1 of the file\), data row 2 \(line 3 of the file\)"
    ):
        read_manifest(path)


def test_missing_ids_and_id_column(tmp_path):
    with pytest.raises(DataError, match="no 'id' column"):
        read_manifest(write(tmp_path / "a.csv", "name,v\nx,1\n"))
    with pytest.raises(DataError, match=r"1 record\(s\) have no id: data row 2"):
        read_manifest(write(tmp_path / "b.csv", "id,v\nx,1\n,2\n"))


def test_bad_files(tmp_path):
    with pytest.raises(ReadError, match="unsupported manifest format"):
        read_manifest(write(tmp_path / "m.xlsx", "x"))
    with pytest.raises(ReadError, match="not found"):
        read_manifest(tmp_path / "absent.csv")
    with pytest.raises(ReadError, match="line 2 is not valid JSON"):
        read_manifest(write(tmp_path / "m.jsonl", '{"id": "a"}\n{"id": \n'))
    with pytest.raises(ReadError, match="cannot read Parquet"):
        read_manifest(write(tmp_path / "m.parquet", "not parquet"))


def test_split_group_leak_is_rejected_on_read(tmp_path):
    text = "id,split,group\na,train,p1\nb,eval,p1\nc,eval,p2\n"
    with pytest.raises(DataError, match="group 'p1' is in splits 'eval', 'train'"):
        read_manifest(write(tmp_path / "m.csv", text))


def test_select(tmp_path):
    m = read_manifest(write(tmp_path / "m.csv", CSV), views=["image"])
    train = m.select("train")
    assert train.ids == ["a", "b"]
    assert train.views == ("image",)
    assert list(train.frame.index) == [0, 1]
    assert len(train.source_frame) == 3
    assert m.select(["eval", "train"]).ids == ["a", "b", "c"]
    with pytest.raises(
        DataError, match=r"no record has split 'test'; the manifest's splits are \['eval', 'train'\]"
    ):
        m.select("test")
    no_split = Manifest.from_frame(pd.DataFrame({"id": ["a"]}))
    with pytest.raises(DataError, match="no 'split' column"):
        no_split.select("train")


@pytest.mark.parametrize(
    "value, missing",
    [
        (None, True),
        (float("nan"), True),
        (np.float32("nan"), True),
        (pd.NA, True),
        ("", True),
        ("  ", True),
        ("x", False),
        (0, False),
        (0.0, False),
        ([], False),
        (np.array([np.nan]), False),
    ],
)
def test_is_missing(value, missing):
    assert is_missing(value) is missing


text_cells = st.text(
    alphabet=string.ascii_letters + string.digits + " ,\"'-_;:é", min_size=1, max_size=12
).filter(lambda s: s.strip() == s and s != "")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    ids=st.lists(text_cells, min_size=1, max_size=8, unique=True),
    data=st.data(),
    fmt=st.sampled_from(["csv", "tsv", "jsonl", "parquet", "csv.gz"]),
)
def test_roundtrip_property(tmp_path, ids, data, fmt):
    """Whatever text the cells hold, ids, labels and view values (or their absence) round-trip."""
    labels = data.draw(st.lists(st.one_of(st.none(), text_cells), min_size=len(ids), max_size=len(ids)))
    views = data.draw(st.lists(st.one_of(st.none(), text_cells), min_size=len(ids), max_size=len(ids)))
    frame = pd.DataFrame({"id": ids, "v": views, "label": labels})
    path = tmp_path / f"m.{fmt}"
    if fmt == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in frame.to_dict("records")), encoding="utf-8")
    elif fmt == "parquet":
        frame.to_parquet(path)
    else:
        frame.to_csv(path, sep="\t" if fmt == "tsv" else ",", index=False)
    m = read_manifest(path, views=["v"])
    assert m.ids == ids
    assert m.view_values("v") == views
    assert [None if is_missing(x) else x for x in m.frame["label"].tolist()] == labels


@settings(max_examples=40, deadline=None)
@given(ids=st.lists(st.sampled_from(["a", "b", "c", "d", "e"]), min_size=2, max_size=10))
def test_duplicate_detection_property(ids):
    duplicated = sorted({i for i in ids if ids.count(i) > 1})
    frame = pd.DataFrame({"id": ids})
    if not duplicated:
        assert Manifest.from_frame(frame).ids == ids
        return
    with pytest.raises(DataError) as info:
        Manifest.from_frame(frame)
    message = str(info.value)
    for record_id in duplicated:
        rows = [i + 1 for i, x in enumerate(ids) if x == record_id]
        assert f"{record_id!r} at " + ", ".join(f"data row {r}" for r in rows) in message
