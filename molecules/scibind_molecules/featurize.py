"""Molecules -> PyG graphs with integer-coded atom and bond features (the :data:`~.schema.SCHEMA`).

``x`` is ``int64[num_atoms, 9]`` (one column per :data:`~.schema.ATOM_FEATURES` entry), ``edge_index`` holds
each bond as two directed edges (begin -> end, then end -> begin, in RDKit's bond order) and ``edge_attr`` is
``int64[num_edges, 3]`` (:data:`~.schema.BOND_FEATURES`). A value outside a vocabulary gets the column's
last code ("other").

Speed comes from doing per molecule only the unavoidable RDKit calls (one per atom and feature, gathered by
list comprehensions) and everything else once per batch in numpy: code lookup tables, offsets, one tensor
per field and a :class:`~torch_geometric.data.Batch` assembled directly instead of through
``Batch.from_data_list``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from scibind_molecules.chem import MoleculeError, parse_molecule
from scibind_molecules.schema import SCHEMA, FeatureSchema

if TYPE_CHECKING:
    from rdkit import Chem
    from torch_geometric.data import Batch, Data

__all__ = ["Featurized", "featurize_mol", "featurize_mols", "featurize_smiles", "lookup_tables", "parse_many"]


def _enum_table(enum: Any, vocab: Sequence[str]) -> np.ndarray:
    """RDKit enum value -> code (position of its name in ``vocab``; unknown values -> ``len(vocab)``)."""
    size = max(int(v) for v in enum.values.values()) + 1
    table = np.full(size, len(vocab), dtype=np.int64)
    for name, value in enum.names.items():
        if name in vocab:
            table[int(value)] = vocab.index(name)
    return table


def _int_table(vocab: Sequence[int]) -> tuple[np.ndarray, int]:
    """Integer value -> code, as a table indexed by ``value - lowest``; values outside -> ``len(vocab)``."""
    low, high = min(vocab), max(vocab)
    table = np.full(high - low + 1, len(vocab), dtype=np.int64)
    for code, value in enumerate(vocab):
        table[value - low] = code
    return table, low


def _codes(values: np.ndarray, table: np.ndarray, low: int, other: int) -> np.ndarray:
    """Map raw values through a lookup table; values outside its range get the ``other`` code."""
    shifted = values - low
    inside = (shifted >= 0) & (shifted < len(table))
    out = np.full(values.shape, other, dtype=np.int64)
    out[inside] = table[shifted[inside]]
    return out


@dataclass(frozen=True)
class _Tables:
    atom: list[tuple[np.ndarray, int, int]]
    bond: list[tuple[np.ndarray, int, int]]


_TABLES: dict[str, _Tables] = {}


def lookup_tables(schema: FeatureSchema = SCHEMA) -> _Tables:
    """The raw-value -> code tables of ``schema`` (built once per schema digest)."""
    cached = _TABLES.get(schema.digest)
    if cached is not None:
        return cached
    from rdkit import Chem

    enums = {
        "chirality": Chem.rdchem.ChiralType,
        "hybridization": Chem.rdchem.HybridizationType,
        "bond_type": Chem.rdchem.BondType,
        "stereo": Chem.rdchem.BondStereo,
    }

    def table(name: str, vocab: tuple[Any, ...]) -> tuple[np.ndarray, int, int]:
        if name in enums:
            return _enum_table(enums[name], [str(v) for v in vocab]), 0, len(vocab)
        return (*_int_table([int(v) for v in vocab]), len(vocab))

    tables = _Tables(
        atom=[table(k, v) for k, v in schema.atom.items()],
        bond=[table(k, v) for k, v in schema.bond.items()],
    )
    _TABLES[schema.digest] = tables
    return tables


def _raw_atoms(mol: Chem.Mol, hints: _Hints) -> list[list[int]]:
    """Raw per-atom values, one list per column of :data:`~.schema.ATOM_FEATURES`."""
    atoms = [mol.GetAtomWithIdx(i) for i in range(mol.GetNumAtoms())]
    chirality = [a.GetChiralTag() for a in atoms] if hints.chiral else [0] * len(atoms)
    return [
        [a.GetAtomicNum() for a in atoms],
        chirality,
        [a.GetTotalDegree() for a in atoms],
        [a.GetFormalCharge() for a in atoms],
        [a.GetTotalNumHs() for a in atoms],
        [a.GetNumRadicalElectrons() for a in atoms],
        [a.GetHybridization() for a in atoms],
        [a.GetIsAromatic() for a in atoms],
        [a.IsInRing() for a in atoms],
    ]


# Bond order (as RDKit's double) -> BondType value, for bonds whose type is fully given by it.
_ORDER_TO_TYPE = {1.0: 1, 2.0: 2, 3.0: 3}
_AROMATIC_TYPE = 12


def _raw_bonds(mol: Chem.Mol, hints: _Hints) -> list[list[int]]:
    """Raw per-bond values: begin, end, then one list per column of :data:`~.schema.BOND_FEATURES`."""
    bonds = [mol.GetBondWithIdx(i) for i in range(mol.GetNumBonds())]
    if hints.plain_bonds:
        # Enum getters cost ~3x a float getter; for SMILES without dative bonds the order and the aromatic
        # flag determine the type exactly. Anything unusual falls back to GetBondType.
        orders = [b.GetBondTypeAsDouble() for b in bonds]
        aromatic = [b.GetIsAromatic() for b in bonds]
        types = [
            _AROMATIC_TYPE if arom else _ORDER_TO_TYPE.get(order, -1)
            for order, arom in zip(orders, aromatic, strict=True)
        ]
        types = [t if t >= 0 else int(bonds[i].GetBondType()) for i, t in enumerate(types)]
    else:
        types = [b.GetBondType() for b in bonds]
    stereo = [b.GetStereo() for b in bonds] if hints.directional else [0] * len(bonds)
    return [
        [b.GetBeginAtomIdx() for b in bonds],
        [b.GetEndAtomIdx() for b in bonds],
        types,
        stereo,
        [b.GetIsConjugated() for b in bonds],
    ]


@dataclass(frozen=True)
class _Hints:
    r"""What the input text rules out, so the featurizer can skip RDKit calls whose answer is known.

    Only SMILES give hints: without ``@`` RDKit sets no chiral tag, and without ``/`` or ``\\`` no
    double-bond stereo. Dative bonds (written ``->``, or perceived by RDKit on bonds to bracketed metals)
    send the molecule's bonds to the exact path. Other inputs (mol blocks, InChI) get the exact path.
    """

    chiral: bool = True
    directional: bool = True
    plain_bonds: bool = False

    @classmethod
    def of(cls, text: str | None, mol: Chem.Mol) -> _Hints:
        if text is None or text.startswith("InChI=") or "\n" in text:
            return cls()
        plain = "<" not in text and ">" not in text
        if plain and "[" in text:
            plain = not mol.HasSubstructMatch(_dative_query())
        return cls(chiral="@" in text, directional="/" in text or "\\" in text, plain_bonds=plain)


_DATIVE: list[Any] = []


def _dative_query() -> Any:
    if not _DATIVE:
        from rdkit import Chem

        _DATIVE.append(Chem.MolFromSmarts("*->*"))
    return _DATIVE[0]


EXACT = _Hints()
"""No shortcuts: every feature read from RDKit (what the reference featurizer does)."""


@dataclass
class Featurized:
    """A featurized list of molecules and what was skipped.

    Attributes:
        batch: The graphs of the molecules that featurized, in input order.
        index: Position in the input of each graph of :attr:`batch`.
        errors: ``(input position, reason)`` of every skipped input.
    """

    batch: Batch
    index: list[int]
    errors: list[tuple[int, str]] = field(default_factory=list)


def featurize_mols(
    mols: Sequence[Chem.Mol],
    *,
    smiles: Sequence[str] | None = None,
    schema: FeatureSchema = SCHEMA,
    _hints: Sequence[_Hints] | None = None,
) -> Batch:
    """Featurize RDKit molecules into one :class:`~torch_geometric.data.Batch`.

    Args:
        mols: Sanitized molecules.
        smiles: Text stored per graph as ``smiles`` (default: RDKit's canonical SMILES).
        schema: The featurization schema.

    Returns:
        A batch whose ``to_data_list()`` gives one :class:`~torch_geometric.data.Data` per molecule.
    """
    import torch
    from rdkit import Chem
    from torch_geometric.data import Batch

    tables = lookup_tables(schema)
    atom_cols: list[list[int]] = [[] for _ in tables.atom]
    bond_cols: list[list[int]] = [[] for _ in range(2 + len(tables.bond))]
    n_atoms = np.zeros(len(mols), dtype=np.int64)
    n_bonds = np.zeros(len(mols), dtype=np.int64)
    for i, mol in enumerate(mols):
        hints = EXACT if _hints is None else _hints[i]
        raw = _raw_atoms(mol, hints)
        n_atoms[i] = len(raw[0])
        for col, values in zip(atom_cols, raw, strict=True):
            col.extend(values)
        raw_b = _raw_bonds(mol, hints)
        n_bonds[i] = len(raw_b[0])
        for col, values in zip(bond_cols, raw_b, strict=True):
            col.extend(values)
    x = np.empty((int(n_atoms.sum()), len(tables.atom)), dtype=np.int64)
    for j, (col, (table, low, other)) in enumerate(zip(atom_cols, tables.atom, strict=True)):
        x[:, j] = _codes(np.asarray(col, dtype=np.int64), table, low, other)
    node_ptr = np.concatenate([[0], np.cumsum(n_atoms)])
    edge_ptr = 2 * np.concatenate([[0], np.cumsum(n_bonds)])
    offsets = np.repeat(node_ptr[:-1], n_bonds)
    begin = np.asarray(bond_cols[0], dtype=np.int64) + offsets
    end = np.asarray(bond_cols[1], dtype=np.int64) + offsets
    edge_index = np.stack([np.stack([begin, end], 1).reshape(-1), np.stack([end, begin], 1).reshape(-1)])
    bond_attr = np.empty((len(begin), len(tables.bond)), dtype=np.int64)
    for j, (col, (table, low, other)) in enumerate(zip(bond_cols[2:], tables.bond, strict=True)):
        bond_attr[:, j] = _codes(np.asarray(col, dtype=np.int64), table, low, other)
    edge_attr = np.repeat(bond_attr, 2, axis=0)
    texts = list(smiles) if smiles is not None else [Chem.MolToSmiles(m) for m in mols]
    n = len(mols)
    node_ptr_t = torch.from_numpy(node_ptr)
    edge_ptr_t = torch.from_numpy(edge_ptr)
    batch = Batch(
        x=torch.from_numpy(x),
        edge_index=torch.from_numpy(edge_index),
        edge_attr=torch.from_numpy(edge_attr),
        smiles=texts,
        batch=torch.repeat_interleave(torch.arange(n), torch.from_numpy(n_atoms)),
        ptr=node_ptr_t,
    )
    batch._num_graphs = n
    batch._slice_dict = {
        "x": node_ptr_t,
        "edge_index": edge_ptr_t,
        "edge_attr": edge_ptr_t,
        "smiles": torch.arange(n + 1),
    }
    batch._inc_dict = {
        "x": torch.zeros(n, dtype=torch.long),
        "edge_index": node_ptr_t[:-1],
        "edge_attr": torch.zeros(n, dtype=torch.long),
        "smiles": None,
    }
    return batch


def featurize_mol(mol: Chem.Mol, *, smiles: str | None = None, schema: FeatureSchema = SCHEMA) -> Data:
    """Featurize one molecule into a :class:`~torch_geometric.data.Data` (see :func:`featurize_mols`)."""
    return featurize_mols([mol], smiles=None if smiles is None else [smiles], schema=schema).get_example(0)


def featurize_smiles(
    smiles: str | Iterable[str],
    on_error: Literal["raise", "skip"] = "raise",
    *,
    schema: FeatureSchema = SCHEMA,
    return_errors: bool = False,
) -> Any:
    """SMILES (or InChI) strings -> PyG graphs.

    Args:
        smiles: One string (returns a :class:`~torch_geometric.data.Data`) or several (returns a
            :class:`~torch_geometric.data.Batch`; ``batch.smiles`` holds the input strings).
        on_error: ``"raise"``: the first molecule RDKit refuses raises :class:`~.chem.MoleculeError` naming
            its position and RDKit's reason. ``"skip"``: it is left out (``batch.source_index`` holds the
            input position of every graph).
        schema: The featurization schema.
        return_errors: Return a :class:`Featurized` (batch, input positions, skipped inputs with reasons).

    Raises:
        MoleculeError: ``on_error="raise"`` and an input cannot be parsed or sanitized.
    """
    import torch

    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    single = isinstance(smiles, str)
    texts = [smiles] if single else list(smiles)
    mols, kept, errors = parse_many(texts)
    if errors and on_error == "raise":
        i, reason = errors[0]
        raise MoleculeError(f"molecule {i} ({texts[i]!r}): {reason}")
    kept_texts = [texts[i] for i in kept]
    batch = featurize_mols(
        mols,
        smiles=kept_texts,
        schema=schema,
        _hints=[_Hints.of(t, m) for t, m in zip(kept_texts, mols, strict=True)],
    )
    batch.source_index = torch.tensor(kept, dtype=torch.long)
    batch._slice_dict["source_index"] = torch.arange(len(kept) + 1)
    batch._inc_dict["source_index"] = torch.zeros(len(kept), dtype=torch.long)
    if return_errors:
        return Featurized(batch, kept, errors)
    if single:
        return batch.get_example(0) if kept else None
    return batch


def parse_many(texts: Sequence[str]) -> tuple[list[Chem.Mol], list[int], list[tuple[int, str]]]:
    """Parse SMILES/InChI strings, keeping RDKit's reason for each one it refuses.

    One RDKit log capture spans the whole list (a capture per molecule costs as much as 20 % of parsing).

    Returns:
        ``(molecules, input positions of the molecules, [(input position, reason), ...])``.
    """
    from rdkit import Chem, rdBase

    mols: list[Chem.Mol] = []
    kept: list[int] = []
    errors: list[tuple[int, str]] = []
    with rdBase.CaptureErrorLog() as capture:
        seen = 0
        for i, text in enumerate(texts):
            mol = None
            if isinstance(text, str) and text.strip() and not text.startswith("InChI="):
                mol = Chem.MolFromSmiles(text)
            if mol is not None and mol.GetNumAtoms() > 0:
                mols.append(mol)
                kept.append(i)
                continue
            log = capture.messages
            try:
                # The slow path names the reason (empty input, InChI, syntax, valence...).
                mols.append(parse_molecule(text, max_heavy_atoms=None, log=log[seen:]))
                kept.append(i)
            except MoleculeError as exc:
                errors.append((i, str(exc)))
            seen = len(capture.messages)
    return mols, kept, errors
