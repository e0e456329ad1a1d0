"""Fields from files: discovery, channel maps, the field reader, on the real sample and on written TIFFs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scibind.errors import DataError, ReadError
from scibind_cell_painting.channels import CHANNELS, channel_map_from_cellprofiler
from scibind_cell_painting.collate import collate_fields
from scibind_cell_painting.fields import discover_fields, fields_frame
from scibind_cell_painting.platemap import annotate_wells, read_compounds, read_platemap
from scibind_cell_painting.reader import FieldReader

SAMPLE = "images/BR00143976_r03c03f03"
EXPECTED_MAP = {"1": "Brightfield", "2": "ER", "3": "AGP", "4": "Mito", "5": "DNA", "6": "RNA"}


def test_channel_map_read_from_cellprofiler_columns(cellpainting_dir):
    mapping = channel_map_from_cellprofiler(cellpainting_dir / SAMPLE / "BR00143976_shrunken.parquet")
    assert mapping == EXPECTED_MAP


@pytest.fixture(scope="module")
def real_field(shared_data_dir):
    folder = shared_data_dir / "cellpainting" / SAMPLE
    fields = discover_fields(folder, EXPECTED_MAP, plate="BR00143976")
    assert len(fields) == 1
    return fields[0]


def test_real_field_is_grouped_with_named_channels(real_field):
    assert (real_field.plate, real_field.well, real_field.site) == ("BR00143976", "C03", 3)
    assert real_field.channels["DNA"].name == "r03c03f03p01-ch5sk1fk1fl1.tiff"
    assert real_field.channels["Brightfield"].name.startswith("r03c03f03p01-ch1")
    assert set(real_field.channels) == set(CHANNELS)


def test_real_field_reads_in_canonical_order_whatever_the_file_order(real_field):
    import tifffile

    reader = FieldReader(size=(270, 270), normalize="dtype", cache_mb=0)
    shuffled = dict(reversed(list(real_field.channels.items())))
    sample = reader.read({k: str(v) for k, v in shuffled.items()}, record_id=real_field.id)
    pixels, ids = sample.data["pixels"], sample.data["channels"]
    assert pixels.shape == (6, 270, 270) and sample.meta["original_size"] == (1080, 1080)
    assert [CHANNELS[i] for i in ids.tolist()] == list(CHANNELS) == sample.meta["channels"]
    raw_dna = tifffile.imread(real_field.channels["DNA"]).astype(np.float64)
    # area downsampling keeps the mean intensity of the DNA (ch5) file
    assert float(pixels[0].mean()) == pytest.approx(raw_dna.mean() / 65535, rel=1e-4)
    assert sample.meta["dtype"] == "uint16"


def test_reader_selects_and_orders_channels(real_field):
    reader = FieldReader(channels=["Mito", "dna"], size=(64, 64))
    sample = reader.read({k: str(v) for k, v in real_field.channels.items()}, record_id="r")
    assert sample.meta["channels"] == ["Mito", "DNA"]
    assert sample.data["channels"].tolist() == [CHANNELS.index("Mito"), 0]
    # percentile normalisation maps each channel to [0, 1]
    assert float(sample.data["pixels"].min()) == 0.0 and float(sample.data["pixels"].max()) == 1.0


def test_fields_frame_and_plate_map_join(tmp_path, field_writer):
    for well in [(1, 1), (1, 2)]:
        for site in (1, 2):
            field_writer(tmp_path / "images" / "P1", well=well, site=site, seed=site)
    (tmp_path / "map.tsv").write_text(
        "well_position\tbroad_sample\nA01\tBRD-1\nA02\tBRD-2\n", encoding="utf-8"
    )
    (tmp_path / "cpd.tsv").write_text(
        "broad_sample\tpert_iname\nBRD-1\taspirin\nBRD-2\tquinine\n", encoding="utf-8"
    )
    fields = discover_fields(tmp_path / "images", {2: "ER", 3: "AGP", 4: "Mito", 5: "DNA", 6: "RNA"})
    frame = fields_frame(fields, view="cells", relative_to=tmp_path)
    assert frame["id"].tolist() == ["P1_A01_s1", "P1_A01_s2", "P1_A02_s1", "P1_A02_s2"]
    assert frame.loc[0, "cells.DNA"] == "images/P1/r01c01f01p01-ch5sk1fk1fl1.tiff"
    joined = annotate_wells(frame, read_platemap(tmp_path / "map.tsv"), read_compounds(tmp_path / "cpd.tsv"))
    assert joined["pert_iname"].tolist() == ["aspirin", "aspirin", "quinine", "quinine"]
    with pytest.raises(DataError, match=r"wells \['A02'\] are not in plates.tsv"):
        annotate_wells(frame, read_platemap(tmp_path / "map.tsv").iloc[:1], platemap_name="plates.tsv")


def test_discovery_errors_name_the_files(tmp_path, field_writer):
    field_writer(tmp_path / "P1", tokens=(1, 2, 7))
    with pytest.raises(DataError, match=r"ch7sk1fk1fl1.tiff: channel 7 is not in the channel map"):
        discover_fields(tmp_path, {1: "DNA", 2: "ER"})
    with pytest.raises(DataError, match="no image file matches"):
        discover_fields(tmp_path / "P1", {1: "DNA"}, patterns=["jump"])


def _files(paths, names=("ER", "AGP", "Mito", "DNA", "RNA")):
    return {name: str(paths[token]) for name, token in zip(names, (2, 3, 4, 5, 6), strict=True)}


def test_missing_channel_file_is_an_error_naming_it(tmp_path, field_writer):
    value = _files(field_writer(tmp_path))
    value["RNA"] = None
    with pytest.raises(ReadError, match=r"no file for channel\(s\) \['RNA'\]"):
        FieldReader().read(value, record_id="f1")
    assert FieldReader(missing="drop").read(value, record_id="f1").meta["channels"] == [
        "DNA",
        "ER",
        "AGP",
        "Mito",
    ]
    value["RNA"] = str(tmp_path / "gone.tiff")
    with pytest.raises(ReadError, match=r"gone\.tiff"):
        FieldReader().read(value, record_id="f1")


def test_mismatched_sizes_and_bit_depths_are_errors(tmp_path, field_writer):
    value = _files(field_writer(tmp_path / "a"))
    value["DNA"] = str(field_writer(tmp_path / "b", size=20, tokens=(5,))[5])
    with pytest.raises(
        ReadError, match=r"differ in size: .*DNA \(r03c03f01p01-ch5sk1fk1fl1.tiff\): \(20, 20\)"
    ):
        FieldReader().read(value, record_id="f1")
    value["DNA"] = str(field_writer(tmp_path / "c", dtype="uint8", tokens=(5,))[5])
    with pytest.raises(ReadError, match="differ in bit depth"):
        FieldReader().read(value, record_id="f1")
    floats = _files(field_writer(tmp_path / "d", dtype="float32"))
    with pytest.raises(ReadError, match="unexpected pixel type float32"):
        FieldReader().read(floats, record_id="f1")


def test_illumination_correction_divides_by_the_function(tmp_path, field_writer):
    paths = field_writer(tmp_path, size=16)
    value = _files(paths)
    function = np.linspace(0.5, 2.0, 256, dtype=np.float32).reshape(16, 16)
    np.save(tmp_path / "P1_IllumDNA.npy", function)
    value["illum_DNA"] = str(tmp_path / "P1_IllumDNA.npy")
    plain = FieldReader(normalize="none").read(_files(paths), record_id="f")
    corrected = FieldReader(normalize="none").read(value, record_id="f")
    assert corrected.meta["illumination_corrected"] == ["DNA"]
    torch.testing.assert_close(
        corrected.data["pixels"][0], plain.data["pixels"][0] / torch.from_numpy(function)
    )
    torch.testing.assert_close(corrected.data["pixels"][1:], plain.data["pixels"][1:])
    np.save(tmp_path / "bad.npy", np.ones((8, 8), dtype=np.float32))
    value["illum_DNA"] = str(tmp_path / "bad.npy")
    with pytest.raises(ReadError, match=r"bad.npy.*does not fit images of shape \(16, 16\)"):
        FieldReader().read(value, record_id="f")


def test_ome_stack_channel_names_come_from_its_metadata(tmp_path):
    import tifffile

    stack = np.stack([np.full((8, 8), 10 * (i + 1), dtype=np.uint16) for i in range(3)])
    path = tmp_path / "field.ome.tif"
    tifffile.imwrite(path, stack, metadata={"axes": "CYX", "Channel": {"Name": ["Mito", "Hoechst", "ConA"]}})
    sample = FieldReader(normalize="none").read(str(path), record_id="s")
    assert sample.meta["channels"] == ["DNA", "ER", "Mito"]
    assert sample.data["pixels"][:, 0, 0].tolist() == [20.0, 30.0, 10.0]


def test_collate_pads_channels_and_checks_sizes():
    a = {"pixels": torch.ones(3, 4, 4), "channels": torch.tensor([0, 1, 2])}
    b = {"pixels": torch.ones(1, 4, 4), "channels": torch.tensor([4])}
    batch = collate_fields([a, b])
    assert batch["pixels"].shape == (2, 3, 4, 4)
    assert batch["mask"].tolist() == [[True, True, True], [True, False, False]]
    assert float(batch["pixels"][1, 1:].abs().sum()) == 0.0
    with pytest.raises(Exception, match="differ in size"):
        collate_fields([a, {"pixels": torch.ones(1, 5, 5), "channels": torch.tensor([0])}])
