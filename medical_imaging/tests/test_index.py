"""``scibind medical-index``: series split out of a mixed export, pseudonymous ids, readable listings."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scibind_medical_imaging.phi import pseudonym
from scibind_medical_imaging.readers import VolumeReader
from scibind_medical_imaging.writers import write_dicom_series

from .conftest import LAS_AFFINE, ramp_volume

SALT = "a-test-salt-of-enough-length"


def test_index_splits_series_and_writes_pseudonymous_manifest(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
):
    from scibind.cli.main import main

    export = tmp_path / "export"
    studies = [
        ("PAT-A", "1.2.3.1", "1.2.3.1.1", 1),
        ("PAT-A", "1.2.3.1", "1.2.3.1.2", 2),
        ("PAT-B", "1.2.3.2", "1.2.3.2.1", 1),
    ]
    for n, (patient, study, series, number) in enumerate(studies):
        header = {
            "PatientID": patient,
            "StudyInstanceUID": study,
            "SeriesInstanceUID": series,
            "SeriesNumber": number,
        }
        write_dicom_series(ramp_volume() + 1000 * n, LAS_AFFINE, tmp_path / f"s{n}", header=header, seed=n)
    export.mkdir()
    for n in range(3):  # one flat folder mixing all series, as PACS exports often are
        for file in (tmp_path / f"s{n}").iterdir():
            shutil.move(file, export / f"{n}_{file.name}")
    (export / "notes.txt").write_text("not dicom", encoding="utf-8")
    salt_file = tmp_path / "salt.txt"
    salt_file.write_text(SALT, encoding="utf-8")
    with pytest.raises(SystemExit) as info:
        main(
            [
                "medical-index",
                str(export),
                "--out",
                str(tmp_path / "out"),
                "--salt-file",
                str(salt_file),
                "--json",
            ]
        )
    captured = capfd.readouterr()
    assert info.value.code in (0, None), captured.err
    summary = json.loads(captured.out)
    assert (summary["series"], summary["files"], summary["unreadable"]) == (3, 24, 1)
    frame = pd.read_csv(tmp_path / "out" / "manifest.csv")
    key = SALT.encode()
    study_a = pseudonym(key, "PAT-A", "1.2.3.1", prefix="st-")
    assert sorted(frame["id"]) == sorted(
        [f"{study_a}-s1", f"{study_a}-s2", pseudonym(key, "PAT-B", "1.2.3.2", prefix="st-")]
    )
    assert frame.set_index("id").loc[f"{study_a}-s2", "group"] == pseudonym(key, "PAT-A", prefix="pat-")
    text = "".join(p.read_text() for p in (tmp_path / "out").rglob("*") if p.is_file())
    assert "PAT-A" not in text and "1.2.3.1" not in text
    reader = VolumeReader(orientation=None)
    second = reader.read(f"series/{study_a}-s2.series.json", record_id="x", base_dir=tmp_path / "out")
    assert second.data.shape == (1, 10, 12, 8)
    assert float(second.data.mean()) == pytest.approx(float(np.mean(ramp_volume())) + 1000)
    monkeypatch.delenv("SCIBIND_PSEUDONYM_SALT", raising=False)
    with pytest.raises(SystemExit) as info:
        main(["medical-index", str(export), "--out", str(tmp_path / "out2")])
    assert info.value.code == 2 and "salt" in capfd.readouterr().err


def test_mixed_folder_becomes_one_prepared_item_per_series_and_bad_ones_are_quarantined(tmp_path: Path):
    """``medical-index`` then ``prepare`` on its manifest; and ``prepare`` on the mixed folder itself."""
    from scibind.prepare import run_prepare
    from scibind_medical_imaging.index import index_dicom

    from .test_bad_inputs import _sr_document

    export = tmp_path / "export"
    export.mkdir()
    truncated_name = ""
    for n in range(4):
        header = {
            "PatientID": f"PAT-{n}",
            "StudyInstanceUID": f"1.2.9.{n}",
            "SeriesInstanceUID": f"1.2.9.{n}.1",
        }
        files = write_dicom_series(
            ramp_volume() + 100 * n, LAS_AFFINE, tmp_path / f"s{n}", header=header, seed=n
        )
        if n == 2:  # a broken file inside one series: pixel data cut short
            files[4].write_bytes(files[4].read_bytes()[:-150])
            truncated_name = f"{n}_{files[4].name}"
        for file in files:
            shutil.move(file, export / f"{n}_{file.name}")
    _sr_document(export / "report.dcm")  # a structured report among the images
    (export / "garbage.dcm").write_bytes(b"\x00" * 50)  # not DICOM at all
    summary = index_dicom(export, tmp_path / "index", salt=SALT.encode())
    assert (summary.series, summary.files, summary.non_image, summary.unreadable) == (4, 32, 1, 1)
    result = run_prepare([str(tmp_path / "index" / "manifest.csv")], tmp_path / "prepared")
    assert (result.prepared, result.quarantined) == (3, 1)
    lines = [json.loads(x) for x in (tmp_path / "prepared" / "quarantine.jsonl").read_text().splitlines()]
    assert len(lines) == 1 and truncated_name in lines[0]["reason"]
    means = sorted(
        round(float(np.load(v, allow_pickle=False).mean()), 3)
        for v in (tmp_path / "prepared" / "cache").rglob("volume.npy")
    )
    assert means == pytest.approx([float(np.mean(ramp_volume())) + 100 * n for n in (0, 1, 3)], abs=1e-3)

    # The folder itself: the reader splits it into one item per series (Reader.items) plus the garbage file.
    direct = run_prepare([str(export)], tmp_path / "direct")
    assert (direct.prepared, direct.quarantined) == (3, 2)
    bad = [json.loads(x) for x in (tmp_path / "direct" / "quarantine.jsonl").read_text().splitlines()]
    reasons = sorted(b["reason"] for b in bad)
    assert any(truncated_name in r for r in reasons) and any("garbage.dcm" in r for r in reasons)
    direct_means = sorted(
        round(float(np.load(v, allow_pickle=False).mean()), 3)
        for v in (tmp_path / "direct" / "cache").rglob("volume.npy")
    )
    assert direct_means == means
    output = b"".join(
        p.read_bytes() for p in (tmp_path / "direct").rglob("*") if p.suffix in (".json", ".jsonl")
    )
    assert b"PAT-" not in output and b"1.2.9." not in output  # no patient id or UID in any summary
