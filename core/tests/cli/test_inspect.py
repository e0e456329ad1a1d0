"""`scibind inspect PATH` on real files from the shared data folder."""

from __future__ import annotations

import json

CXR = "medical/cxr/png/4d98e1de.png"


def test_inspect_real_png(cli, shared_data_dir):
    result = cli("inspect", str(shared_data_dir / CXR), "--json")
    assert result.code == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["reader"] == "core/image"
    assert "core/image" in [c["name"] for c in info["candidates"]]
    assert info["description"]["modality"] == "image"
    assert len(info["description"]["shape"]) == 3


def test_inspect_table(cli, shared_data_dir):
    result = cli("inspect", str(shared_data_dir / CXR))
    assert result.code == 0
    assert "core/image" in result.stdout and "shape" in result.stdout


def test_inspect_template_reader(cli, tmp_path):
    path = tmp_path / "cell.kv"
    path.write_text("area_um2 = 10\nperimeter_um = 12.5\n", encoding="utf-8")
    info = json.loads(cli("inspect", str(path), "--json").stdout)
    assert info["reader"] == "template/kv"
    assert info["description"]["shape"] == [2]
    assert info["description"]["keys"] == ["area_um2", "perimeter_um"]


def test_unknown_file_exits_2_with_a_clear_message(cli, tmp_path):
    path = tmp_path / "notes.unknownext"
    path.write_text("hello", encoding="utf-8")
    result = cli("inspect", str(path))
    assert result.code == 2
    assert "no installed reader opens this file" in result.stderr and str(path) in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_and_corrupt_files_exit_2(cli, tmp_path, shared_data_dir):
    assert cli("inspect", str(tmp_path / "absent.png")).code == 2
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes((shared_data_dir / CXR).read_bytes()[:300])
    result = cli("inspect", str(corrupt))
    assert result.code == 2
    assert "corrupt.png" in result.stderr
