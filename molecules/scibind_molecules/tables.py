"""Tables of molecules (CSV, TSV, Parquet, ChEBI-20 text files) -> validated records plus a quarantine.

ChEBI-20 files (``CID<TAB>SMILES<TAB>description``) contain quote characters inside descriptions, so they
are read with ``QUOTE_NONE``; any ``.txt`` file with that header is read that way.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scibind.errors import ConfigError, ReadError

from scibind_molecules.chem import MAX_HEAVY_ATOMS, MoleculeError, parse_molecule, standardize

__all__ = ["CHEBI20_COLUMNS", "Validated", "read_table", "validate_molecules"]

CHEBI20_COLUMNS = ("CID", "SMILES", "description")
SMILES_NAMES = ("smiles", "SMILES", "canonical_smiles", "molecule", "mol", "inchi", "InChI")
TEXT_NAMES = ("description", "text", "caption", "name", "iupac")
ID_NAMES = ("id", "CID", "cid", "ID", "name")


def read_table(path: str | Path) -> Any:
    """Read a table of molecules as a pandas DataFrame of strings.

    ``.csv``/``.csv.gz`` (comma), ``.tsv``/``.tsv.gz`` (tab), ``.parquet``/``.pq``, and ``.txt`` (tab,
    ``QUOTE_NONE``: the ChEBI-20 layout).

    Raises:
        ReadError: Missing file, unknown suffix or a parse error.
    """
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise ReadError(
            "file not found; check the path (relative paths start at the current folder)", path=path
        )
    name = path.name.lower()
    try:
        if name.endswith((".parquet", ".pq")):
            frame = pd.read_parquet(path)
            return frame.astype({c: "string" for c in frame.columns}).astype(object)
        if name.endswith((".csv", ".csv.gz")):
            return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
        if name.endswith((".tsv", ".tsv.gz")):
            return pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, na_values=[""])
        if name.endswith(".txt"):
            return pd.read_csv(
                path, sep="\t", dtype=str, quoting=csv.QUOTE_NONE, keep_default_na=False, na_values=[""]
            )
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise ReadError(f"cannot parse the table ({type(exc).__name__}: {exc})", path=path) from exc
    raise ReadError("unsupported table; use .csv, .tsv, .parquet or a ChEBI-20 .txt", path=path)


def pick_column(frame: Any, wanted: str | None, candidates: tuple[str, ...], role: str, path: Path) -> str:
    """The column for ``role``: ``wanted`` when given, else the first of ``candidates`` present."""
    if wanted is not None:
        if wanted not in frame.columns:
            raise ConfigError(
                f"{path}: no column {wanted!r} for the {role}; columns are {list(frame.columns)}"
            )
        return wanted
    for name in candidates:
        if name in frame.columns:
            return name
    raise ConfigError(
        f"{path}: cannot tell which column holds the {role} (tried {list(candidates)}); columns are "
        f"{list(frame.columns)}; name it with the {role}_column option"
    )


@dataclass
class Validated:
    """The result of :func:`validate_molecules`.

    Attributes:
        keep: Row positions whose molecule RDKit accepted.
        smiles: Canonical SMILES of each kept row (after standardization).
        quarantine: One dict per refused row: ``row`` (0-based data row), ``id``, ``value``, ``reason``.
    """

    keep: list[int] = field(default_factory=list)
    smiles: list[str] = field(default_factory=list)
    quarantine: list[dict[str, Any]] = field(default_factory=list)


def validate_molecules(
    values: list[Any],
    ids: list[str],
    *,
    steps: tuple[str, ...] = (),
    max_heavy_atoms: int | None = MAX_HEAVY_ATOMS,
) -> Validated:
    """Parse every molecule; refused ones go to the quarantine with RDKit's reason, the rest continue."""
    from rdkit import Chem

    out = Validated()
    for row, (value, rid) in enumerate(zip(values, ids, strict=True)):
        try:
            if not isinstance(value, str):
                raise MoleculeError("empty molecule: the cell is empty")
            mol = parse_molecule(value, max_heavy_atoms=max_heavy_atoms)
            if steps:
                mol = standardize(mol, steps)
        except MoleculeError as exc:
            out.quarantine.append({"row": row, "id": rid, "value": value, "reason": str(exc)})
            continue
        out.keep.append(row)
        out.smiles.append(Chem.MolToSmiles(mol))
    return out
