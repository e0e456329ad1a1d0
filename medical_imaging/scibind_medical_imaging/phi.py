"""Hospital data safety: which DICOM header values may leave a reader, and salted pseudonyms.

Readers copy into sample metadata only the technical attributes listed in :data:`SAFE_TAGS` (geometry,
pixel encoding, acquisition physics). Names, identifiers, dates, times, UIDs, institutions and free-text
descriptions never do. Record and group ids come from :func:`pseudonym`, a keyed hash of patient and study
identifiers, so the same patient always maps to the same id without the id revealing who it is.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from pathlib import Path
from typing import Any

from scibind.errors import ConfigError

__all__ = ["PHI_KEYWORDS", "SAFE_TAGS", "SALT_ENV", "load_salt", "pseudonym", "safe_header"]

SALT_ENV = "SCIBIND_PSEUDONYM_SALT"
"""Environment variable holding the pseudonym salt when no salt file is given."""

SAFE_TAGS: tuple[str, ...] = (
    "Modality",
    "BodyPartExamined",
    "Rows",
    "Columns",
    "NumberOfFrames",
    "BitsAllocated",
    "BitsStored",
    "PixelRepresentation",
    "PhotometricInterpretation",
    "SamplesPerPixel",
    "SliceThickness",
    "SpacingBetweenSlices",
    "KVP",
    "MagneticFieldStrength",
    "RepetitionTime",
    "EchoTime",
    "ViewPosition",
    "ImageLaterality",
)
"""DICOM keywords whose values are technical and safe to keep in sample metadata."""

PHI_KEYWORDS: tuple[str, ...] = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientBirthTime",
    "OtherPatientIDs",
    "OtherPatientNames",
    "PatientAddress",
    "PatientTelephoneNumbers",
    "AccessionNumber",
    "InstitutionName",
    "InstitutionAddress",
    "InstitutionalDepartmentName",
    "ReferringPhysicianName",
    "PerformingPhysicianName",
    "OperatorsName",
    "StationName",
    "DeviceSerialNumber",
    "StudyDate",
    "SeriesDate",
    "AcquisitionDate",
    "ContentDate",
    "StudyTime",
    "SeriesTime",
    "AcquisitionDateTime",
    "StudyID",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "SOPInstanceUID",
    "FrameOfReferenceUID",
    "StudyDescription",
    "SeriesDescription",
)
"""Keywords that identify a person, place, time or study (a non-exhaustive list used by tests and docs;
the reader's rule is the opposite: only :data:`SAFE_TAGS` leave it)."""


def safe_header(dataset: Any) -> dict[str, Any]:
    """The :data:`SAFE_TAGS` present in a pydicom dataset, as plain JSON-able values."""
    out: dict[str, Any] = {}
    for keyword in SAFE_TAGS:
        value = dataset.get(keyword)
        if value is None or value == "":
            continue
        if isinstance(value, int):
            out[keyword] = int(value)
        elif isinstance(value, float):
            out[keyword] = float(value)
        else:
            out[keyword] = str(value)
    return out


def load_salt(salt: str | bytes | None = None, salt_file: str | Path | None = None) -> bytes:
    """The pseudonym key: ``salt``, else the content of ``salt_file``, else ``$SCIBIND_PSEUDONYM_SALT``.

    Raises:
        ConfigError: No salt is given, or it is shorter than 16 bytes (a short key can be brute-forced
            against a list of patient ids).
    """
    if salt is None and salt_file is not None:
        try:
            salt = Path(salt_file).expanduser().read_bytes().strip()
        except OSError as exc:
            raise ConfigError(f"cannot read the salt file {salt_file} ({exc})") from exc
    if salt is None:
        salt = os.environ.get(SALT_ENV)
    if salt is None:
        raise ConfigError(
            f"pseudonyms need a secret salt: pass --salt-file FILE (e.g. `openssl rand -hex 32 > salt.txt`, "
            f"kept out of the shared data) or set ${SALT_ENV}"
        )
    key = salt.encode("utf-8") if isinstance(salt, str) else bytes(salt)
    if len(key) < 16:
        raise ConfigError(f"the pseudonym salt must be at least 16 bytes long, got {len(key)}")
    return key


def pseudonym(key: bytes, *parts: str, prefix: str = "", length: int = 16) -> str:
    """A stable keyed hash of ``parts``: ``prefix`` + ``length`` hex characters of HMAC-SHA256.

    Args:
        key: The salt from :func:`load_salt`.
        parts: Identifying values (patient id, study UID, ...); joined unambiguously.
        prefix: Readable prefix such as ``"pat-"``.
        length: Number of hex characters kept (16 = 64 bits: collisions are negligible below ~10^8 ids).
    """
    message = "\x1f".join(str(p) for p in parts).encode("utf-8")
    return prefix + hmac.new(key, message, hashlib.sha256).hexdigest()[:length]
