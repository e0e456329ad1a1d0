"""Profiles and plate maps on the real LINCS and JUMP-Target files."""

from __future__ import annotations

import numpy as np
import pytest
from scibind.data.manifest import read_manifest
from scibind.errors import ReadError
from scibind_cell_painting.average_precision import mean_average_precision
from scibind_cell_painting.platemap import annotate_wells, read_compounds, read_platemap
from scibind_cell_painting.profiles import profiles_manifest, read_profiles

LINCS = "profiles/SQ00015054_normalized_feature_select.csv.gz"


@pytest.fixture(scope="module")
def lincs(shared_data_dir):
    return read_profiles(shared_data_dir / "cellpainting" / LINCS)


def test_lincs_profiles_split_metadata_from_features(lincs):
    assert lincs.features.shape == (384, 454) and lincs.features.dtype == np.float32
    assert lincs.dropped == []
    assert all(not f.startswith("Metadata_") for f in lincs.feature_names)
    treated = lincs.metadata[lincs.metadata["Metadata_pert_type"] == "trt"]
    assert len(treated) == 360 and treated["Metadata_moa"].nunique() == 50
    assert (
        treated["Metadata_broad_sample"].nunique() == 59 - 4
        or treated["Metadata_broad_sample"].nunique() > 50
    )


def test_raw_feature_moa_retrieval_beats_chance(lincs):
    treated = (lincs.metadata["Metadata_pert_type"] == "trt").to_numpy()
    moa = lincs.metadata["Metadata_moa"].where(treated, None).tolist()
    result = mean_average_precision(lincs.features, moa, null_size=200)
    assert len(result.labels) == 50
    assert result.mean > 3 * result.chance  # replicates (doses) of one compound share an MOA
    assert 0.0 < result.fraction_retrieved <= 1.0


def test_lincs_manifest_pairs_profiles_with_text(shared_data_dir, tmp_path):
    path = profiles_manifest(shared_data_dir / "cellpainting" / LINCS, tmp_path, drop_controls=True)
    manifest = read_manifest(path, views=["profile", "text"])
    frame = manifest.frame
    assert len(frame) == 360 and set(frame["split"]) == {"train", "eval"}
    assert not set(frame[frame.split == "train"].group) & set(frame[frame.split == "eval"].group)
    row = frame.set_index("id").loc["SQ00015054_A07"]
    assert row["text"] == "BRD-K92301463-001-05-5, prostanoid receptor agonist, targeting HPGD"
    assert row["moa"] == "prostanoid receptor agonist" and len(row["profile"]) == 454


def test_jump_target2_wells_join_to_smiles(shared_data_dir):
    folder = shared_data_dir / "cellpainting"
    profiles = read_profiles(folder / "profiles/BR00121431_main.csv")
    assert len(profiles) == 2 and profiles.features.shape[1] > 5000
    wells = profiles.metadata.rename(columns={"Metadata_Well": "well"})[["well"]]
    joined = annotate_wells(
        wells,
        read_platemap(folder / "metadata/JUMP-Target-2_compound_platemap.tsv"),
        read_compounds(folder / "metadata/JUMP-Target-2_compound_metadata.tsv"),
    )
    assert joined["pert_iname"].tolist() == ["1-octanol", "quinine"]
    assert joined.loc[0, "smiles"] == "CCCCCCCCO"
    assert joined.loc[1, "InChIKey"] == "LOUPRKONTZGTKE-UHFFFAOYSA-N"


def test_jump_platemap_has_384_unique_wells(shared_data_dir):
    platemap = read_platemap(shared_data_dir / "cellpainting/metadata/JUMP-Target-1_compound_platemap.tsv")
    assert len(platemap) == 384 and platemap["well"].is_unique and platemap["well"].iloc[0] == "A01"


def test_profile_table_errors(tmp_path):
    (tmp_path / "nometa.csv").write_text("a,b\n1,2\n", encoding="utf-8")
    with pytest.raises(ReadError, match="no Metadata_"):
        read_profiles(tmp_path / "nometa.csv")
    (tmp_path / "nan.csv").write_text("Metadata_Well,f1,f2\nA01,1,\nA02,2,3\n", encoding="utf-8")
    assert read_profiles(tmp_path / "nan.csv").dropped == ["f2"]
    with pytest.raises(ReadError, match="NaN"):
        read_profiles(tmp_path / "nan.csv", nan="error")


def test_jump_target2_platemap_join_annotates_every_well_with_its_compound(shared_data_dir):
    import csv

    folder = shared_data_dir / "cellpainting/metadata"
    platemap = read_platemap(folder / "JUMP-Target-2_compound_platemap.tsv")
    compounds = read_compounds(folder / "JUMP-Target-2_compound_metadata.tsv")
    joined = annotate_wells(platemap[["well"]], platemap, compounds).set_index("well")
    assert len(joined) == 384 and joined["pert_iname"].notna().all() and joined["smiles"].notna().all()
    empty = joined["broad_sample"].isna()  # JUMP-Target leaves DMSO wells empty; the table has a DMSO row
    assert empty.sum() == 64
    assert set(joined.loc[empty, "pert_iname"]) == {"DMSO"} and set(joined.loc[empty, "control_type"]) == {
        "negcon"
    }
    treated = joined[~empty]
    assert (
        treated["broad_sample"].nunique() == 306 and treated["InChIKey"].nunique() == 301
    )  # 5 compounds in two salt forms or batches
    assert treated["control_type"].value_counts().to_dict() == {
        "poscon_diverse": 28,
        "poscon_cp": 26,
        "poscon_orf": 6,
    }
    assert set(compounds["broad_sample"].dropna()) == set(
        treated["broad_sample"]
    )  # no compound left unplaced
    # Every well against a plain reading of the two files: the join pairs each well with its own compound.
    with open(folder / "JUMP-Target-2_compound_metadata.tsv", encoding="utf-8") as handle:
        table = {row["broad_sample"]: row for row in csv.DictReader(handle, delimiter="\t")}
    with open(folder / "JUMP-Target-2_compound_platemap.tsv", encoding="utf-8") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            expected = table[row["broad_sample"] or "NA"]  # empty well = the table's "NA" (DMSO) row
            got = joined.loc[row["well_position"]]
            assert (got["smiles"], got["InChIKey"]) == (expected["smiles"], expected["InChIKey"]), row
    assert (
        joined.loc["A01", "smiles"] == "CCCCCCCCO"
        and joined.loc["K05", "pert_iname"] == "fludarabine-phosphate"
    )
