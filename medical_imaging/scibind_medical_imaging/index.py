"""Indexing a DICOM export into a pseudonymous manifest: one record per image series.

``index_dicom`` walks a folder tree, reads headers only, groups image files by series and writes, for each
series, a ``series/<id>.series.json`` listing of its files, plus ``manifest.csv`` with the columns ``id``
(a salted pseudonym of patient + study, suffixed with the series number when a study has several image
series), ``ct_volume`` (the listing), ``group`` (the patient's pseudonym), ``imaging_modality`` and
``n_files``. No header value that identifies anyone is written; reports, presentation states and
non-DICOM files are counted, not indexed.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scibind.atomic import atomic_replace
from scibind.errors import DataError, ReadError

from scibind_medical_imaging.dicom import SERIES_SUFFIX, is_image_header, read_dataset
from scibind_medical_imaging.phi import pseudonym

__all__ = ["IndexSummary", "index_dicom"]


@dataclass
class IndexSummary:
    """What :func:`index_dicom` found.

    Attributes:
        manifest: The written manifest.
        series: Image series indexed (= records).
        files: Image files listed.
        non_image: DICOM objects that are not images (SR, PR, ...), skipped.
        unreadable: Files that are not DICOM or cannot be parsed, skipped (paths in ``unreadable_paths``).
    """

    manifest: Path
    series: int = 0
    files: int = 0
    non_image: int = 0
    unreadable: int = 0
    unreadable_paths: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON form (paths as strings)."""
        return {**self.__dict__, "manifest": str(self.manifest)}


def index_dicom(root: str | Path, out_dir: str | Path, *, salt: bytes) -> IndexSummary:
    """Index every DICOM image series under ``root`` into ``out_dir`` (see the module docstring).

    Args:
        root: Folder tree of DICOM files (any names, any nesting).
        out_dir: Output folder for ``manifest.csv`` and ``series/``.
        salt: Pseudonym key from :func:`scibind_medical_imaging.phi.load_salt`.

    Raises:
        DataError: No DICOM image was found.
    """
    root, out = Path(root), Path(out_dir)
    summary = IndexSummary(manifest=out / "manifest.csv")
    by_series: dict[tuple[str, str, str], list[tuple[Path, int]]] = defaultdict(list)
    modality: dict[tuple[str, str, str], str] = {}
    number: dict[tuple[str, str, str], str] = {}
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            path = Path(folder) / name
            if name.startswith(".") or name == "DICOMDIR":
                continue
            try:
                dataset = read_dataset(path, pixels=False)
            except ReadError:
                summary.unreadable += 1
                summary.unreadable_paths.append(str(path))
                continue
            # Headers only (no pixel data read): an image has Rows and is not a document/annotation.
            if not is_image_header(dataset):
                summary.non_image += 1
                continue
            key = tuple(
                str(dataset.get(k, "")) for k in ("PatientID", "StudyInstanceUID", "SeriesInstanceUID")
            )
            by_series[key].append((path, int(dataset.get("InstanceNumber", 0) or 0)))  # type: ignore[index]
            modality[key] = str(dataset.get("Modality", ""))  # type: ignore[index]
            number[key] = str(dataset.get("SeriesNumber", "") or "")  # type: ignore[index]
    if not by_series:
        raise DataError(
            f"{root}: no DICOM image found ({summary.unreadable} unreadable, {summary.non_image} non-image)"
        )
    studies: dict[tuple[str, str], int] = defaultdict(int)
    for patient, study, _ in by_series:
        studies[(patient, study)] += 1
    rows = []
    listing_dir = out / "series"
    listing_dir.mkdir(parents=True, exist_ok=True)
    for key in sorted(by_series, key=lambda k: (pseudonym(salt, k[0], k[1]), number[k], pseudonym(salt, *k))):
        patient, study, _ = key
        record = pseudonym(salt, patient, study, prefix="st-")
        if studies[(patient, study)] > 1:
            record += f"-s{number[key] or pseudonym(salt, *key, length=6)}"
        listing = listing_dir / f"{record}{SERIES_SUFFIX}"
        files = [
            os.path.relpath(p, listing_dir)
            for p, _ in sorted(by_series[key], key=lambda f: (f[1], f[0].name))
        ]
        listing.write_text(json.dumps({"files": files}, indent=1), encoding="utf-8")
        rows.append(
            {
                "id": record,
                "ct_volume": f"series/{listing.name}",
                "group": pseudonym(salt, patient, prefix="pat-"),
                "imaging_modality": modality[key],
                "n_files": len(files),
            }
        )
        summary.series += 1
        summary.files += len(files)
    ids = [r["id"] for r in rows]
    if len(set(ids)) != len(ids):
        raise DataError(
            f"{root}: two image series of one study share a SeriesNumber; renumber them before indexing"
        )

    def write(tmp: Path) -> None:
        import pandas as pd

        pd.DataFrame(rows).to_csv(tmp, index=False)

    atomic_replace(summary.manifest, write)
    return summary
