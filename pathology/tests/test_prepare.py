"""`scibind prepare` on slides: per-slide h5, GeoJSON, resume, and quarantine of corrupt inputs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import tifffile
from scibind.errors import ConfigError, ReadError
from scibind.prepare import run_prepare
from scibind_pathology.readers import WSIReader
from scibind_pathology.slide import open_slide


def corrupt_inputs(folder: Path, cmu: Path) -> dict[str, Path]:
    truncated = folder / "truncated.svs"
    truncated.write_bytes(cmu.read_bytes()[:300_000])
    empty = folder / "empty.svs"
    empty.write_bytes(b"")
    text = folder / "notes.svs"
    text.write_text("not a slide\n", encoding="utf-8")
    no_units = folder / "no-units.tif"
    tifffile.imwrite(
        no_units, np.full((512, 512, 3), 180, np.uint8), tile=(256, 256), photometric="rgb", metadata=None
    )
    return {"truncated": truncated, "empty": empty, "text": text, "no_units": no_units}


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("truncated", "truncated"),
        ("empty", "empty"),
        ("text", "does not recognise"),
        ("no_units", "slide_mpp"),
    ],
)
def test_corrupt_slides_fail_with_the_file_named(cmu_slide: Path, tmp_path: Path, kind: str, message: str):
    path = corrupt_inputs(tmp_path, cmu_slide)[kind]
    reader = WSIReader(mpp=0.5, tile_size=256)
    with pytest.raises(ReadError, match=message) as info:
        reader.prepare(path, tmp_path / "out")
    assert path.name in str(info.value)


def test_prepare_tiles_quarantines_and_resumes(cmu_slide: Path, tmp_path: Path):
    src = tmp_path / "slides"
    src.mkdir()
    shutil.copy(cmu_slide, src / cmu_slide.name)
    bad = corrupt_inputs(src, cmu_slide)
    out = tmp_path / "out"
    sets = ["tiling.mpp=1.0", "tiling.tile_size=256"]
    summary = run_prepare([src], out, overrides=sets, workers=2)
    assert (summary.total, summary.prepared, summary.quarantined) == (5, 1, 4)
    reasons = [json.loads(line) for line in (out / "quarantine.jsonl").read_text().splitlines()]
    assert sorted(Path(r["path"]).name for r in reasons) == sorted(p.name for p in bad.values())
    assert all(Path(r["path"]).name in r["reason"] for r in reasons)
    [cached] = list(out.glob("cache/pathology/wsi/*/CMU-1-Small-Region.h5"))
    h5 = out / "CMU-1-Small-Region.h5"  # published at the top: the TRIDENT/CLAM layout
    assert h5.samefile(cached) and (out / "CMU-1-Small-Region.geojson").is_file()
    with h5py.File(h5) as f:
        coords = f["coords"][()]
        assert f["coords"].attrs["patch_size_level0"] == 513 and f["coords"].attrs["target_mpp"] == 1.0
    assert 0 < len(coords) <= 20
    again = run_prepare([src], out, overrides=sets)
    assert (again.prepared, again.skipped, again.quarantined) == (0, 1, 4)


def test_prepare_with_encoder_writes_trident_features(cmu_slide: Path, tmp_path: Path):
    reader = WSIReader(mpp=1.0, tile_size=64, encoder="pathology/tiny")
    summary = reader.prepare(cmu_slide, tmp_path)
    with h5py.File(tmp_path / "CMU-1-Small-Region.h5") as f:
        assert f["features"].shape == (summary["n_tiles"], 32)
        assert f["coords"].shape == (summary["n_tiles"], 2)
        assert f["features"].attrs["encoder"] == "pathology/tiny"
    sample = reader.read(str(tmp_path / "CMU-1-Small-Region.h5"), record_id="cmu")
    assert sample.data["features"].shape == (summary["n_tiles"], 32)
    assert sample.meta["mpp"] == 1.0


def test_open_slide_reports_truncated_reads(cmu_slide: Path, tmp_path: Path):
    path = corrupt_inputs(tmp_path, cmu_slide)["truncated"]
    with pytest.raises(ReadError, match="truncated"), open_slide(path) as slide:
        slide.read_level(0)


def test_prepare_quarantines_a_second_slide_of_the_same_name(cmu_slide: Path, tmp_path: Path):
    for folder in ("a", "b"):
        (tmp_path / "slides" / folder).mkdir(parents=True)
        shutil.copy(cmu_slide, tmp_path / "slides" / folder / cmu_slide.name)
    out = tmp_path / "out"
    summary = run_prepare([tmp_path / "slides"], out, overrides=["tiling.mpp=2.0"])
    assert (summary.prepared, summary.quarantined) == (1, 1)
    [entry] = [json.loads(line) for line in (out / "quarantine.jsonl").read_text().splitlines()]
    assert "another item already wrote" in entry["reason"] and (out / "CMU-1-Small-Region.h5").is_file()


def test_unknown_option_group_is_a_clear_error(cmu_slide: Path, tmp_path: Path):
    with pytest.raises(ConfigError, match="no installed reader takes 'tilling' options"):
        run_prepare([cmu_slide], tmp_path / "out", overrides=["tilling.mpp=0.5"])
