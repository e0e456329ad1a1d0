"""The ``molecules/molecule`` reader: SMILES, InChI, mol blocks and SD file records -> molecule graphs.

A manifest cell holds either the molecule inline (``CCO``, ``InChI=1S/...``) or a file reference:
``ligands.sdf`` (its first record), ``ligands.sdf#17`` (record 17, counted from 0) or ``x.mol``. Relative
paths resolve against the manifest's folder.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from scibind.data.readers import Reader
from scibind.data.types import Sample
from scibind.errors import ReadError

from scibind_molecules.chem import (
    MAX_HEAVY_ATOMS,
    STANDARDIZE_STEPS,
    MoleculeError,
    parse_molecule,
    standardize,
)
from scibind_molecules.schema import SCHEMA
from scibind_molecules.sdf import SDFRecord, read_sdf

__all__ = ["MoleculeReader", "is_file_reference"]

_FILE_REF = re.compile(r"^(?P<path>.+\.(?:sdf|mol))(?:#(?P<index>\d+))?$", re.IGNORECASE)


def is_file_reference(value: str) -> bool:
    """Whether a manifest value names an SD/mol file (optionally ``#record``), not an inline molecule."""
    return bool(_FILE_REF.match(value.strip()))


class MoleculeReader(Reader):
    """Molecule -> PyG ``Data`` with integer atom/bond codes (:data:`~.schema.SCHEMA`) and its SMILES.

    Args:
        standardize: Standardization steps (a subset of :data:`~.chem.STANDARDIZE_STEPS`), ``True`` for all,
            or ``False``/``None`` for none. Recorded in each sample's ``meta``.
        max_heavy_atoms: Refuse larger molecules (``None``: no limit).
        motifs: Return hierarchical graphs (:class:`~.motifs.MotifData`: atoms plus BRICS, ring-system and
            functional-group motif nodes), for encoders built with ``motifs=True``.
    """

    modality: ClassVar[str] = "molecule_graph"

    def __init__(
        self,
        standardize: bool | Sequence[str] | None = None,
        max_heavy_atoms: int | None = MAX_HEAVY_ATOMS,
        motifs: bool = False,
    ):
        if standardize is True:
            self.steps: tuple[str, ...] = STANDARDIZE_STEPS
        elif not standardize:
            self.steps = ()
        else:
            self.steps = tuple(standardize)
        self.max_heavy_atoms = max_heavy_atoms
        self.motifs = motifs
        self._sdf_cache: dict[Path, list[SDFRecord]] = {}

    def _records(self, path: Path, record_id: str) -> list[SDFRecord]:
        records = self._sdf_cache.get(path)
        if records is None:
            try:
                records = read_sdf(path)
            except FileNotFoundError as exc:
                raise ReadError(
                    "file not found; check the path", path=path, record=record_id or None
                ) from exc
            except OSError as exc:
                raise ReadError(f"cannot read the file ({exc})", path=path, record=record_id or None) from exc
            self._sdf_cache[path] = records
        return records

    def _resolve(self, value: str, record_id: str, base_dir: Path | None) -> tuple[str, str, dict[str, Any]]:
        """``(molecule text, source, extra meta)`` for an inline value or a file reference."""
        match = _FILE_REF.match(value.strip())
        if match is None:
            return value, "inline", {}
        path = Path(match.group("path")).expanduser()
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        index = int(match.group("index") or 0)
        records = self._records(path, record_id)
        if index >= len(records):
            raise ReadError(
                f"record {index} does not exist: the file has {len(records)} records (numbered from 0)",
                path=path,
                record=record_id or None,
            )
        rec = records[index]
        meta = {"sdf_record": index, "sdf_line": rec.line, "name": rec.name, "properties": rec.properties}
        return rec.molblock, f"{path}#{index}" if match.group("index") else str(path), meta

    def read(self, value: Any, *, record_id: str = "", base_dir: Path | None = None) -> Sample:
        """Read one molecule.

        Raises:
            ReadError: The value is blank, the file or record is missing, or RDKit refuses the molecule
                (the message carries RDKit's reason).
        """
        from rdkit import Chem

        from scibind_molecules.featurize import featurize_mol

        if not isinstance(value, str):
            raise ReadError(
                f"expected a SMILES, InChI or SD file reference (text), got {type(value).__name__}",
                record=record_id or "<unnamed>",
            )
        text, source, meta = self._resolve(value, record_id, base_dir)
        where = {"path": source} if source != "inline" else {}
        try:
            mol = parse_molecule(text, max_heavy_atoms=self.max_heavy_atoms)
            if self.steps:
                mol = standardize(mol, self.steps)
        except MoleculeError as exc:
            raise ReadError(str(exc), record=record_id or "<unnamed>", **where) from exc
        smiles = Chem.MolToSmiles(mol)
        data = featurize_mol(mol, smiles=smiles)
        if self.motifs:
            from scibind_molecules.motifs import hierarchical_graph

            data = hierarchical_graph(mol, data)
        meta = {
            "source": source,
            "record": record_id,
            "smiles": smiles,
            "num_atoms": mol.GetNumAtoms(),
            "standardize": list(self.steps),
            "schema": SCHEMA.digest,
            "rdkit": SCHEMA.rdkit,
            **meta,
        }
        return Sample(id=record_id, modality=self.modality, data=data, meta=meta)

    def describe(self, path: Path) -> dict[str, Any]:
        """Summary of an SD or mol file: records, how many RDKit parses, property names, first errors."""
        path = Path(path)
        if path.suffix.lower() != ".sdf":
            sample = self.read(str(path), record_id=path.name)
            return {"modality": self.modality, **{k: v for k, v in sample.meta.items() if k != "properties"}}
        records = self._records(path, path.name)
        errors: list[str] = []
        names: dict[str, None] = {}
        for rec in records:
            names.update(dict.fromkeys(rec.properties))
            try:
                parse_molecule(rec.molblock, "molblock", max_heavy_atoms=self.max_heavy_atoms)
            except MoleculeError as exc:
                errors.append(f"record {rec.index} (line {rec.line}): {exc}")
        return {
            "modality": self.modality,
            "source": str(path),
            "records": len(records),
            "valid": len(records) - len(errors),
            "properties": list(names),
            "errors": errors[:10],
            "schema": SCHEMA.digest,
            "rdkit": SCHEMA.rdkit,
        }
