"""No planted DICOM identifier reaches any output byte (prepare, inspect, reader metadata, logs)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scibind.errors import ConfigError
from scibind_medical_imaging.phi import load_salt, pseudonym
from scibind_medical_imaging.readers import VolumeReader
from scibind_medical_imaging.writers import write_dicom_series

from .conftest import LAS_AFFINE, ramp_volume

PLANTED = {
    "PatientName": "Zyxwerth^Quillon",
    "PatientID": "PID-738291-QX",
    "PatientBirthDate": "19470312",
    "AccessionNumber": "ACC99120034",
    "InstitutionName": "Saint Qwertyuiop Hospital",
    "ReferringPhysicianName": "Dr^Plumbfeather",
    "StudyDate": "20190704",
    "StudyID": "STUDY-55123",
    "StudyInstanceUID": "1.2.826.0.1.3680043.8.498.7777777771",
    "SeriesInstanceUID": "1.2.826.0.1.3680043.8.498.7777777772",
    "StudyDescription": "CT THORAX Zyxwerth follow-up",
}


def test_planted_identifiers_never_reach_outputs(tmp_path: Path, capfd: pytest.CaptureFixture[str]):
    from scibind.cli.main import main

    data = tmp_path / "data"
    write_dicom_series(ramp_volume(), LAS_AFFINE, data / "series", header=PLANTED)
    (data / "manifest.csv").write_text("id,ct_volume\nct-0001,series\n", encoding="utf-8")
    out = tmp_path / "out"
    logs = []
    for args in (
        ["prepare", str(data / "manifest.csv"), "--out", str(out), "--json"],
        ["inspect", str(data / "series"), "--json"],
    ):
        with pytest.raises(SystemExit) as info:
            main(args)
        captured = capfd.readouterr()
        assert info.value.code in (0, None), captured.err
        logs.append(captured.out + captured.err)
    sample = VolumeReader().read("series", record_id="ct-0001", base_dir=data)
    logs.append(json.dumps(sample.meta, default=str))
    blobs = [p.read_bytes() for p in out.rglob("*") if p.is_file()] + [t.encode() for t in logs]
    assert len(blobs) > 3 and any(b"ct-0001" in b for b in blobs)  # the outputs do hold the record
    for value in PLANTED.values():
        for part in {value, *value.split("^")}:
            hits = [i for i, blob in enumerate(blobs) if part.encode() in blob]
            assert not hits, f"planted identifier {part!r} found in output {hits}"


def test_salt_is_required_and_long():
    with pytest.raises(ConfigError, match="salt"):
        load_salt("short")
    assert load_salt("x" * 16) == b"x" * 16


@settings(max_examples=30, deadline=None)
@given(st.text(min_size=1, max_size=20), st.text(min_size=1, max_size=20))
def test_pseudonyms_are_stable_keyed_and_opaque(patient: str, study: str):
    key = b"k" * 32
    first = pseudonym(key, patient, study, prefix="ct-")
    assert first == pseudonym(key, patient, study, prefix="ct-")
    assert first != pseudonym(b"j" * 32, patient, study, prefix="ct-")
    assert len(first) == 19 and first.startswith("ct-")
    # Joining is unambiguous: moving a character between the parts changes the id.
    assert pseudonym(key, patient + "a", study) != pseudonym(key, patient, "a" + study)
