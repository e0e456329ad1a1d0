"""Parsing molecules with RDKit, keeping RDKit's reason when it refuses one, and optional standardization.

RDKit reports why it cannot parse or sanitize a molecule only through its error log; :func:`parse_molecule`
captures that log so the reason reaches the quarantine record instead of the terminal.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

from scibind.errors import ConfigError, DataError

if TYPE_CHECKING:
    from rdkit import Chem

__all__ = [
    "MAX_HEAVY_ATOMS",
    "STANDARDIZE_STEPS",
    "MoleculeError",
    "detect_kind",
    "parse_molecule",
    "standardize",
]

MoleculeKind = Literal["smiles", "inchi", "molblock"]
STANDARDIZE_STEPS: tuple[str, ...] = ("cleanup", "largest_fragment", "neutralize", "canonical_tautomer")
"""Standardization steps, applied in this order when requested."""
MAX_HEAVY_ATOMS = 500
"""Default limit of heavy atoms per molecule (proteins, polymers and mis-parsed records are refused)."""

_TIMESTAMP = re.compile(r"^\[\d\d:\d\d:\d\d\]\s*")


class MoleculeError(DataError):
    """RDKit could not turn a record into a molecule; the message carries RDKit's reason."""


def _reason(log: str, fallback: str) -> str:
    lines = [_TIMESTAMP.sub("", line).strip() for line in log.splitlines()]
    lines = [line for line in lines if line and line != "ERROR:"]
    return "; ".join(lines) if lines else fallback


def detect_kind(text: str) -> MoleculeKind:
    """``"inchi"`` for ``InChI=...``, ``"molblock"`` for a multi-line MDL block, else ``"smiles"``."""
    stripped = text.strip()
    if stripped.startswith("InChI="):
        return "inchi"
    if "\n" in stripped and ("M  END" in stripped or "V2000" in stripped or "V3000" in stripped):
        return "molblock"
    return "smiles"


def parse_molecule(
    text: str,
    kind: MoleculeKind | Literal["auto"] = "auto",
    *,
    max_heavy_atoms: int | None = MAX_HEAVY_ATOMS,
    log: str = "",
) -> Chem.Mol:
    """Parse and sanitize one molecule.

    Args:
        text: A SMILES, an InChI (``InChI=1S/...``) or an MDL mol block.
        kind: The notation, or ``"auto"`` (see :func:`detect_kind`).
        max_heavy_atoms: Refuse molecules with more heavy atoms (``None``: no limit).
        log: RDKit log text already captured for this input by the caller (its reason is used when this call
            logs none itself, as when the caller holds an enclosing capture).

    Returns:
        The sanitized RDKit molecule.

    Raises:
        MoleculeError: Empty input, a syntax error, a sanitization failure (with RDKit's reason, e.g.
            ``Explicit valence for atom # 0 C, 5, is greater than permitted``) or too many atoms.
    """
    from rdkit import Chem, rdBase

    if not isinstance(text, str) or not text.strip():
        raise MoleculeError("empty molecule: the value is blank")
    kind = detect_kind(text) if kind == "auto" else kind
    with rdBase.CaptureErrorLog() as capture:
        if kind == "smiles":
            mol = Chem.MolFromSmiles(text.strip())
        elif kind == "inchi":
            mol = Chem.MolFromInchi(text.strip())
        elif kind == "molblock":
            mol = Chem.MolFromMolBlock(text)
        else:
            raise ConfigError(f"molecule kind must be smiles, inchi, molblock or auto, got {kind!r}")
    if mol is None:
        reason = _reason(capture.messages, "") or _reason(log, "no reason given")
        raise MoleculeError(f"RDKit cannot parse this {kind}: {reason}")
    if mol.GetNumAtoms() == 0:
        raise MoleculeError(f"the {kind} describes no atoms")
    if max_heavy_atoms is not None and mol.GetNumHeavyAtoms() > max_heavy_atoms:
        raise MoleculeError(
            f"molecule has {mol.GetNumHeavyAtoms()} heavy atoms, more than "
            f"max_heavy_atoms={max_heavy_atoms}; "
            "raise the limit if such molecules are intended"
        )
    return mol


def standardize(mol: Chem.Mol, steps: Sequence[str] = STANDARDIZE_STEPS) -> Chem.Mol:
    """Standardize a molecule with RDKit's ``rdMolStandardize``.

    Args:
        mol: A sanitized molecule.
        steps: A subset of :data:`STANDARDIZE_STEPS`; they run in that order whatever order is given.
            ``largest_fragment`` drops salts and solvents, ``neutralize`` uncharges, and
            ``canonical_tautomer`` picks RDKit's canonical tautomer.

    Raises:
        ConfigError: An unknown step.
        MoleculeError: RDKit fails on a step.
    """
    from rdkit import rdBase
    from rdkit.Chem.MolStandardize import rdMolStandardize

    unknown = sorted(set(steps) - set(STANDARDIZE_STEPS))
    if unknown:
        raise ConfigError(f"unknown standardization steps {unknown}; choose from {list(STANDARDIZE_STEPS)}")
    actions = {
        "cleanup": rdMolStandardize.Cleanup,
        "largest_fragment": rdMolStandardize.LargestFragmentChooser().choose,
        "neutralize": rdMolStandardize.Uncharger().uncharge,
        "canonical_tautomer": rdMolStandardize.TautomerEnumerator().Canonicalize,
    }
    for step in STANDARDIZE_STEPS:
        if step not in steps:
            continue
        with rdBase.CaptureErrorLog() as capture:
            try:
                mol = actions[step](mol)
            except Exception as exc:  # RDKit raises its own exception types from C++
                raise MoleculeError(f"standardization step {step!r} failed: {exc}") from exc
        if mol is None:
            raise MoleculeError(f"standardization step {step!r} failed: {_reason(capture.messages, '')}")
    return mol
