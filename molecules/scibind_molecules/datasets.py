"""Dataset generators (``scibind_register_datasets``): molecule-text manifests from tables, and the demo set.

``molecules/text-pairs`` turns ChEBI-20 files (or any table with a SMILES and a text column) into a scibind
manifest: molecules RDKit refuses are quarantined with RDKit's reason and the row, the rest are written as
``id, molecule, text, split``. ``molecules/nci-descriptions`` is the offline demo: real molecules from the NCI
set bundled with RDKit, written to an SD file with a generated structural description per molecule.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scibind.atomic import atomic_replace, atomic_write_json
from scibind.data.splits import assign_splits
from scibind.errors import ConfigError, DataError

from scibind_molecules.chem import MAX_HEAVY_ATOMS, STANDARDIZE_STEPS
from scibind_molecules.schema import SCHEMA
from scibind_molecules.tables import (
    ID_NAMES,
    SMILES_NAMES,
    TEXT_NAMES,
    pick_column,
    read_table,
    validate_molecules,
)

__all__ = ["make_nci_descriptions", "make_text_pairs"]

QUARANTINE_FILE = "quarantine.jsonl"
INFO_FILE = "dataset_info.json"


def _steps(standardize: bool | Sequence[str] | None) -> tuple[str, ...]:
    if standardize is True:
        return STANDARDIZE_STEPS
    return tuple(standardize or ())


def _load_pairs(
    path: Path, smiles_column: str | None, text_column: str | None, id_column: str | None
) -> tuple[list[str], list[Any], list[Any]]:
    frame = read_table(path)
    smiles_col = pick_column(frame, smiles_column, SMILES_NAMES, "smiles", path)
    text_col = pick_column(frame, text_column, TEXT_NAMES, "text", path)
    id_col = (
        pick_column(frame, id_column, ID_NAMES, "id", path)
        if id_column or any(c in frame.columns for c in ID_NAMES)
        else None
    )
    ids = [str(v) for v in frame[id_col].tolist()] if id_col else [f"row{i}" for i in range(len(frame))]
    return ids, frame[smiles_col].tolist(), frame[text_col].tolist()


def _write_parquet(rows: dict[str, list[Any]], path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    atomic_replace(path, lambda tmp: pq.write_table(pa.table(rows), tmp))


def make_text_pairs(
    out_dir: str | Path,
    *,
    train: str | None = None,
    eval: str | None = None,
    eval_fraction: float = 0.2,
    seed: int = 0,
    smiles_column: str | None = None,
    text_column: str | None = None,
    id_column: str | None = None,
    standardize: bool | Sequence[str] | None = None,
    max_heavy_atoms: int | None = MAX_HEAVY_ATOMS,
) -> Path:
    """Write a molecule-text manifest from one or two tables (ChEBI-20 ``.txt``, CSV, TSV, Parquet).

    With only ``train``, a seeded ``eval_fraction`` of its records becomes the ``eval`` split; with ``eval``
    too, each file is one split. Records RDKit refuses (or with an empty text) go to ``quarantine.jsonl``
    (file, row, id, value, reason) and the run continues; ``dataset_info.json`` records the counts, the
    standardization steps, the featurization schema and the RDKit version.

    Args:
        out_dir: Output folder.
        train: The training table (required).
        eval: The evaluation table (optional).
        eval_fraction: Fraction of ``train`` held out when ``eval`` is not given.
        seed: Seed of that split.
        smiles_column: Column with SMILES/InChI (default: the first of ``smiles``, ``SMILES``, ...).
        text_column: Column with the text (default: ``description``, ``text``, ``caption``, ``name``...).
        id_column: Column with record ids (default: ``id``, ``CID``...; else row numbers).
        standardize: ``True`` (every step), a list of steps, or ``None``.
        max_heavy_atoms: Quarantine larger molecules.

    Returns:
        Path of ``manifest.parquet``.

    Raises:
        ConfigError: No ``train`` table, a bad fraction, or unknown columns.
        DataError: Every record was quarantined, or ids repeat.
    """
    if not train:
        raise ConfigError(
            "molecules/text-pairs needs a training table: --set data.dataset_kwargs.train=FILE "
            "(a ChEBI-20 .txt, or a CSV/TSV/Parquet with SMILES and text columns)"
        )
    if eval is None and not 0.0 < eval_fraction < 1.0:
        raise ConfigError(f"eval_fraction must be in (0, 1), got {eval_fraction}")
    steps = _steps(standardize)
    sources = [("train", Path(train))] + ([("eval", Path(eval))] if eval else [])
    rows: dict[str, list[Any]] = {"id": [], "molecule": [], "text": [], "split": []}
    quarantine: list[dict[str, Any]] = []
    counts: dict[str, int] = {}
    for split, path in sources:
        ids, smiles, texts = _load_pairs(path, smiles_column, text_column, id_column)
        checked = validate_molecules(smiles, ids, steps=steps, max_heavy_atoms=max_heavy_atoms)
        quarantine += [{"file": str(path), **q} for q in checked.quarantine]
        kept = 0
        for row, canonical in zip(checked.keep, checked.smiles, strict=True):
            text = texts[row]
            if not isinstance(text, str) or not text.strip():
                quarantine.append(
                    {
                        "file": str(path),
                        "row": row,
                        "id": ids[row],
                        "value": smiles[row],
                        "reason": "empty text",
                    }
                )
                continue
            rows["id"].append(ids[row] if len(sources) == 1 else f"{split}:{ids[row]}")
            rows["molecule"].append(canonical)
            rows["text"].append(text.strip())
            rows["split"].append(split)
            kept += 1
        counts[split] = kept
    if not rows["id"]:
        raise DataError(f"every record was quarantined; see the reasons in {Path(out_dir) / QUARANTINE_FILE}")
    if len(set(rows["id"])) != len(rows["id"]):
        dupes = sorted({i for i in rows["id"] if rows["id"].count(i) > 1})[:5]
        raise DataError(f"record ids repeat ({dupes}); name a unique id column with id_column")
    if eval is None:
        rows["split"] = assign_splits(
            rows["id"], None, {"train": 1 - eval_fraction, "eval": eval_fraction}, seed=seed
        )
        counts = {s: rows["split"].count(s) for s in ("train", "eval")}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_replace(
        out / QUARANTINE_FILE,
        lambda tmp: tmp.write_text("".join(json.dumps(q) + "\n" for q in quarantine), encoding="utf-8"),
    )
    atomic_write_json(
        out / INFO_FILE,
        {
            "sources": {s: str(p) for s, p in sources},
            "records": counts,
            "quarantined": len(quarantine),
            "standardize": list(steps),
            "schema": SCHEMA.to_dict(),
            "seed": seed,
        },
    )
    manifest = out / "manifest.parquet"
    _write_parquet(rows, manifest)
    return manifest


def _fragment_names() -> list[tuple[str, Any]]:
    """(description, compiled SMARTS) of RDKit's fragment catalogue (``FragmentDescriptors.csv``)."""
    from rdkit import Chem, RDConfig

    out = []
    path = Path(RDConfig.RDDataDir) / "FragmentDescriptors.csv"
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name, description, smarts = (part.strip() for part in line.split("\t")[:3])
        pattern = Chem.MolFromSmarts(smarts)
        if pattern is not None and name.startswith("fr_"):
            out.append((description.removeprefix("Number of ").strip(), pattern))
    return out


def describe_structure(mol: Any, fragments: list[tuple[str, Any]]) -> str:
    """A deterministic sentence about a molecule: formula, rings and functional groups (RDKit only)."""
    from rdkit.Chem import rdMolDescriptors

    formula = rdMolDescriptors.CalcMolFormula(mol)
    aromatic = rdMolDescriptors.CalcNumAromaticRings(mol)
    rings = rdMolDescriptors.CalcNumRings(mol)
    groups = [name for name, pattern in fragments if mol.HasSubstructMatch(pattern)]
    ring_text = "no rings" if rings == 0 else f"{rings} ring{'s' if rings > 1 else ''} ({aromatic} aromatic)"
    group_text = "; ".join(groups[:6]) if groups else "no listed functional group"
    heavy = mol.GetNumHeavyAtoms()
    return f"The molecule {formula} has {heavy} heavy atoms and {ring_text}. Groups: {group_text}."


def make_nci_descriptions(
    out_dir: str | Path, *, n: int = 1500, seed: int = 0, eval_fraction: float = 0.2
) -> Path:
    """The demo dataset: ``n`` real NCI molecules (shipped with RDKit) and a generated description each.

    Writes ``molecules.sdf`` (one record per molecule with ``NSC`` and ``description`` properties) and
    ``manifest.csv`` (``id``, ``molecule`` = ``molecules.sdf#<record>``, ``text``, ``split``). The
    description names the formula, ring counts and RDKit fragment-catalogue groups, so text->molecule
    retrieval is learnable but not trivial (many molecules share groups). Same arguments, same bytes.

    Args:
        out_dir: Output folder.
        n: Molecules (at most the ~5,000 of the NCI file).
        seed: Seed of the molecule sample and the split.
        eval_fraction: Fraction in the ``eval`` split.

    Returns:
        Path of ``manifest.csv``.
    """
    from rdkit import Chem, RDConfig, RDLogger

    if n < 10:
        raise ConfigError(f"n must be >= 10, got {n}")
    RDLogger.DisableLog("rdApp.*")
    try:
        source = Path(RDConfig.RDDataDir) / "NCI" / "first_5K.smi"
        entries = [line.split() for line in source.read_text(encoding="utf-8").splitlines() if line.strip()]
        order = np.random.default_rng(seed).permutation(len(entries))
        fragments = _fragment_names()
        mols, seen = [], set()
        for i in order:
            smiles, nsc = entries[i][0], entries[i][1]
            mol = Chem.MolFromSmiles(smiles)
            if mol is None or mol.GetNumHeavyAtoms() < 3:
                continue
            canonical = Chem.MolToSmiles(mol)
            if canonical in seen:
                continue
            seen.add(canonical)
            mol.SetProp("_Name", f"NSC{nsc}")
            mol.SetProp("NSC", nsc)
            mol.SetProp("description", describe_structure(mol, fragments))
            mols.append(mol)
            if len(mols) == n:
                break
    finally:
        RDLogger.EnableLog("rdApp.*")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    def write_sdf(tmp: Path) -> None:
        writer = Chem.SDWriter(str(tmp))
        for mol in mols:
            writer.write(mol)
        writer.close()

    atomic_replace(out / "molecules.sdf", write_sdf)
    ids = [f"nsc{m.GetProp('NSC')}" for m in mols]
    splits = assign_splits(ids, None, {"train": 1 - eval_fraction, "eval": eval_fraction}, seed=seed)
    import pandas as pd

    frame = pd.DataFrame(
        {
            "id": ids,
            "molecule": [f"molecules.sdf#{i}" for i in range(len(mols))],
            "text": [m.GetProp("description") for m in mols],
            "split": splits,
        }
    )
    manifest = out / "manifest.csv"
    atomic_replace(manifest, lambda tmp: frame.to_csv(tmp, index=False))
    return manifest
