"""Shared fixtures: the real ChEBI-20 validation file and RDKit's bundled NCI SMILES."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def chebi_file(shared_data_dir: Path) -> Path:
    """The ChEBI-20 validation split (3,301 real text-molecule pairs)."""
    path = shared_data_dir / "molecules" / "chebi20" / "validation.txt"
    assert path.is_file(), f"missing {path}"
    return path


@pytest.fixture(scope="session")
def chebi_rows(chebi_file: Path) -> list[list[str]]:
    """ChEBI-20 rows ``[CID, SMILES, description]`` (header dropped), read with QUOTE_NONE."""
    with open(chebi_file, encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
    return rows[1:]


@pytest.fixture(scope="session")
def nci_smiles() -> list[str]:
    """The ~5,000 NCI SMILES shipped with RDKit."""
    from rdkit import RDConfig

    path = Path(RDConfig.RDDataDir) / "NCI" / "first_5K.smi"
    return [line.split()[0] for line in path.read_text().splitlines() if line.strip()]
