"""The molecule reader on inline values, SD files and bad input; tables and the text-pairs manifest."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scibind.errors import ConfigError, ReadError
from scibind_molecules.readers import MoleculeReader
from scibind_molecules.schema import SCHEMA
from scibind_molecules.sdf import split_sdf

from .test_contracts import SDF_BROKEN, SDF_OK


def test_inline_smiles_and_inchi_give_the_same_graph():
    reader = MoleculeReader()
    a = reader.read("CCO", record_id="r1")
    b = reader.read("InChI=1S/C2H6O/c1-2-3/h3H,2H2,1H3", record_id="r2")
    assert a.data.x.tolist() == b.data.x.tolist()
    assert a.meta["smiles"] == b.meta["smiles"] == "CCO"
    assert a.meta["schema"] == SCHEMA.digest and a.meta["source"] == "inline"


def test_salt_is_kept_whole_or_reduced_to_its_largest_fragment():
    salt = "CC(=O)[O-].[Na+]"
    plain = MoleculeReader().read(salt, record_id="s")
    assert plain.data.num_nodes == 5
    cleaned = MoleculeReader(standardize=["largest_fragment", "neutralize"]).read(salt, record_id="s")
    assert cleaned.meta["smiles"] == "CC(=O)O"
    assert cleaned.meta["standardize"] == ["largest_fragment", "neutralize"]


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("", "blank"),
        ("C1CC(", "syntax error"),
        ("C(C)(C)(C)(C)C", "valence"),
        ("InChI=1S/garbage", "cannot parse this inchi"),
        ("C" * 600, "heavy atoms"),
    ],
)
def test_bad_values_name_the_record_and_rdkits_reason(value, reason):
    with pytest.raises(ReadError, match=reason) as info:
        MoleculeReader().read(value, record_id="row-42")
    assert "row-42" in str(info.value)


def test_sdf_records_by_index_with_properties(tmp_path):
    path = tmp_path / "lib.sdf"
    path.write_text(SDF_OK + SDF_BROKEN + SDF_OK.replace("ethanol", "second"), encoding="utf-8")
    reader = MoleculeReader()
    third = reader.read("lib.sdf#2", record_id="x", base_dir=tmp_path)
    assert third.meta["properties"] == {"name": "second"} and third.meta["sdf_record"] == 2
    assert third.data.num_nodes == 3
    with pytest.raises(ReadError, match=r"lib\.sdf") as info:
        reader.read("lib.sdf#1", record_id="x", base_dir=tmp_path)
    assert "x" in str(info.value)
    with pytest.raises(ReadError, match="record 7 does not exist"):
        reader.read("lib.sdf#7", record_id="x", base_dir=tmp_path)
    summary = reader.describe(path)
    assert summary["records"] == 3 and summary["valid"] == 2
    assert summary["errors"][0].startswith("record 1 (line")


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.dictionaries(
            st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,8}", fullmatch=True),
            st.from_regex(r"[A-Za-z0-9 .,()-]{1,30}", fullmatch=True).map(str.strip).filter(bool),
            max_size=4,
        ),
        min_size=1,
        max_size=5,
    )
)
def test_sdf_split_round_trips_properties(props_per_record):
    blocks = []
    for props in props_per_record:
        data = "".join(f"> <{k}>\n{v}\n\n" for k, v in props.items())
        blocks.append(SDF_OK.split("> <name>")[0] + data + "$$$$\n")
    records = split_sdf("".join(blocks))
    assert [r.properties for r in records] == props_per_record
    assert [r.index for r in records] == list(range(len(props_per_record)))


def test_text_pairs_from_real_chebi20_file(chebi_file, tmp_path):
    import scibind

    manifest = scibind.create_dataset("molecules/text-pairs", tmp_path / "a", train=str(chebi_file), seed=3)
    frame = pd.read_parquet(manifest)
    info = json.loads((tmp_path / "a" / "dataset_info.json").read_text())
    # Two ChEBI-20 validation molecules (oligonucleotides) exceed 500 heavy atoms and are quarantined.
    assert len(frame) == 3299 and info["quarantined"] == 2
    assert info["records"]["eval"] == pytest.approx(0.2 * 3299, abs=2)
    assert info["schema"]["digest"] == SCHEMA.digest
    # Descriptions with quote characters survive QUOTE_NONE reading intact.
    assert frame["text"].str.contains('"').any()
    again = scibind.create_dataset("molecules/text-pairs", tmp_path / "b", train=str(chebi_file), seed=3)
    assert pd.read_parquet(again)["split"].tolist() == frame["split"].tolist()


def test_text_pairs_quarantines_bad_rows_and_keeps_the_rest(tmp_path):
    from scibind_molecules.datasets import make_text_pairs

    table = tmp_path / "mols.csv"
    pd.DataFrame(
        {
            "id": ["a", "b", "c", "d", "e", "f"],
            "smiles": ["CCO", "C1CC(", "", "[Na+].[Cl-]", "c1ccccc1", "CC(C)(C)(C)(C)C"],
            "text": ["ethanol", "broken", "empty", "salt", "benzene", "bad valence"],
        }
    ).to_csv(table, index=False)
    evaluation = tmp_path / "eval.tsv"
    pd.DataFrame({"id": ["x"], "smiles": ["CCN"], "text": ["ethylamine"]}).to_csv(
        evaluation, sep="\t", index=False
    )
    manifest = make_text_pairs(tmp_path / "out", train=str(table), eval=str(evaluation))
    frame = pd.read_parquet(manifest)
    assert frame["id"].tolist() == ["train:a", "train:d", "train:e", "eval:x"]
    assert frame["split"].tolist() == ["train", "train", "train", "eval"]
    lines = [json.loads(x) for x in (tmp_path / "out" / "quarantine.jsonl").read_text().splitlines()]
    assert {q["id"]: q["row"] for q in lines} == {"b": 1, "c": 2, "f": 5}
    assert "syntax error" in lines[0]["reason"] and "valence" in lines[2]["reason"].lower()
    with pytest.raises(ConfigError, match=r"data\.dataset_kwargs\.train"):
        make_text_pairs(tmp_path / "none")
