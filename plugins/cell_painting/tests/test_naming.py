"""File-name parsing (Harmony, JUMP, custom regex) and channel names."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scibind.errors import ConfigError
from scibind_cell_painting.channels import CHANNELS, canonical_channel, channel_index, parse_channel_map
from scibind_cell_painting.naming import ImageName, compile_pattern, parse_image_name, parse_well, well_name

rows = st.integers(1, 32)
cols = st.integers(1, 48)
sites = st.integers(1, 99)
channels = st.integers(1, 9)


def test_the_shared_sample_name_parses():
    parsed = parse_image_name("r03c03f03p01-ch1sk1fk1fl1.tiff")
    assert parsed == ImageName(well="C03", site=3, channel="1", plate=None, plane=1)


@given(rows, cols, sites, channels, st.integers(1, 9))
def test_harmony_round_trip(row, col, site, channel, plane):
    name = f"r{row:02d}c{col:02d}f{site:02d}p{plane:02d}-ch{channel}sk1fk1fl1.tiff"
    parsed = parse_image_name(name)
    assert parsed == ImageName(well_name(row, col), site, str(channel), None, plane)


@given(rows, cols, sites, channels, st.from_regex(r"[A-Z]{2}[0-9]{6}", fullmatch=True), st.booleans())
def test_jump_round_trip(row, col, site, channel, plate, with_suffix):
    suffix = "A1B2C3D4-0000" if with_suffix else ""
    name = f"{plate}_{well_name(row, col)}_s{site}_w{channel}{suffix}.tif"
    parsed = parse_image_name(name)
    assert parsed == ImageName(well_name(row, col), site, str(channel), plate, None)


@given(rows, cols)
def test_well_names_round_trip(row, col):
    assert parse_well(well_name(row, col)) == (row, col)


def test_wells_accept_unpadded_and_lower_case():
    assert parse_well("c3") == (3, 3)
    assert well_name(27, 1) == "AA01"  # 1536-well plates
    with pytest.raises(ConfigError, match="not a well"):
        parse_well("3C")


def test_custom_pattern_and_its_checks():
    pattern = r"(?P<plate>P\d+)-(?P<row>\d+)-(?P<col>\d+)-(?P<site>\d+)-(?P<channel>\w+)\.tif"
    assert parse_image_name("P7-2-11-4-3.tif", [pattern]) == ImageName("B11", 4, "3", "P7", None)
    assert parse_image_name("unrelated.tif", [pattern]) is None
    with pytest.raises(ConfigError, match="channel"):
        compile_pattern(r"(?P<well>\w+)_s(?P<site>\d+)\.tif")
    with pytest.raises(ConfigError, match="not a valid regular"):
        compile_pattern("(unclosed")


@pytest.mark.parametrize(
    ("alias", "name"),
    [
        ("Hoechst", "DNA"),
        ("OrigDNA", "DNA"),
        ("ConA", "ER"),
        ("SYTO14", "RNA"),
        ("Phalloidin", "AGP"),
        ("MitoTracker", "Mito"),
        ("Brightfield_high", "Brightfield"),
        ("illumMito", "Mito"),
    ],
)
def test_channel_aliases(alias, name):
    assert canonical_channel(alias) == name
    assert CHANNELS[channel_index(alias)] == name


def test_channel_map_rejects_unknown_and_duplicate_names():
    assert parse_channel_map({"01": "dna", 2: "er"}) == {"1": "DNA", "2": "ER"}
    with pytest.raises(ConfigError, match="unknown channel name 'GFP'"):
        parse_channel_map({1: "GFP"})
    with pytest.raises(ConfigError, match="both channel"):
        parse_channel_map({1: "DNA", 2: "Hoechst"})
