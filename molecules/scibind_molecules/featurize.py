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

    if list(schema.atom)[_DEGREE] != "degree" or list(schema.atom)[_NUM_HS] != "num_hs":
        raise ValueError("the featurizer needs 'degree' and 'num_hs' as atom columns 2 and 4")
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
        [0] * len(atoms),  # total degree: filled in per batch from the bonds and total Hs
        [a.GetFormalCharge() for a in atoms],
        [a.GetTotalNumHs() for a in atoms],
        [a.GetNumRadicalElectrons() for a in atoms],
        [a.GetHybridization() for a in atoms],
        [a.GetIsAromatic() for a in atoms],
        [a.IsInRing() for a in atoms],
    ]


def _raw_bonds(mol: Chem.Mol, hints: _Hints) -> list[list[int]]:
    """Raw per-bond values: begin, end, then one list per column of :data:`~.schema.BOND_FEATURES`."""
    bonds = [mol.GetBondWithIdx(i) for i in range(mol.GetNumBonds())]
    types = [b.GetBondType() for b in bonds]
    stereo = [b.GetStereo() for b in bonds] if hints.directional else [0] * len(bonds)
    return [
        [b.GetBeginAtomIdx() for b in bonds],
        [b.GetEndAtomIdx() for b in bonds],
        types,
        stereo,
        [b.GetIsConjugated() for b in bonds],
    ]


# Bond order (as RDKit's double) -> BondType value. From SMILES without dative bonds the order determines
# the type exactly (1.5 is AROMATIC; ONEANDAHALF only comes from queries); other orders ask GetBondType.
_ORDER_TO_TYPE = {1.0: 1, 2.0: 2, 3.0: 3, 1.5: 12}


def _raw_fast(mol: Chem.Mol, hints: _Hints) -> tuple[list[list[int]], list[list[int]]]:
    r"""Raw atom and bond columns of a molecule parsed from SMILES, with as few RDKit calls as provable.

    Per atom only atomic number, formal charge, total Hs and hybridization are always asked (unbound methods
    mapped over the atom list: no attribute lookup per atom; hybridization, an enum, costs as much as the
    other three together). The rest is derived exactly:

    - in ring / aromatic: from one ``RingInfo.AtomRings()`` call; only ring atoms are asked whether they are
      aromatic (sanitization refuses aromatic atoms outside rings); a ring-less molecule has none;
    - radicals: RDKit assigns them only to atoms without implicit Hs, i.e. bracket atoms; no ``[`` -> zero;
    - bond type from the bond order; conjugation is asked only when some bond is not single (a conjugated
      bond is part of a system with a multiple or aromatic bond);
    - chirality / bond stereo only when the SMILES has ``@`` / ``/`` or ``\\``.
    """
    from rdkit.Chem import Atom, Bond

    # GetAtomWithIdx makes an atom object in half the time of iterating GetAtoms().
    n = mol.GetNumAtoms()
    atoms = list(map(mol.GetAtomWithIdx, range(n)))
    bonds = list(map(mol.GetBondWithIdx, range(mol.GetNumBonds())))
    begin = list(map(Bond.GetBeginAtomIdx, bonds))
    end = list(map(Bond.GetEndAtomIdx, bonds))
    orders = list(map(Bond.GetBondTypeAsDouble, bonds))
    get = _ORDER_TO_TYPE.get
    types = [get(o, -1) for o in orders]
    if -1 in types:
        types = [t if t >= 0 else int(bonds[i].GetBondType()) for i, t in enumerate(types)]
    if any(o != 1.0 for o in orders):
        conjugated = list(map(Bond.GetIsConjugated, bonds))
    else:
        conjugated = [False] * len(bonds)
    stereo = list(map(Bond.GetStereo, bonds)) if hints.directional else [0] * len(bonds)
    num_hs = list(map(Atom.GetTotalNumHs, atoms))
    rings = mol.GetRingInfo().AtomRings()
    if rings:
        ring_atoms = sorted({i for ring in rings for i in ring})
        in_ring = [False] * n
        aromatic = [False] * n
        for i in ring_atoms:
            in_ring[i] = True
        for i, flag in zip(ring_atoms, map(Atom.GetIsAromatic, [atoms[i] for i in ring_atoms]), strict=True):
            aromatic[i] = flag
    else:
        in_ring = aromatic = [False] * n
    zeros = [0] * n
    atom_cols = [
        list(map(Atom.GetAtomicNum, atoms)),
        list(map(Atom.GetChiralTag, atoms)) if hints.chiral else zeros,
        zeros,  # total degree: filled in per batch from the bonds and total Hs
        list(map(Atom.GetFormalCharge, atoms)),
        num_hs,
        list(map(Atom.GetNumRadicalElectrons, atoms)) if hints.brackets else zeros,
        list(map(Atom.GetHybridization, atoms)),
        aromatic,
        in_ring,
    ]
    return atom_cols, [begin, end, types, stereo, conjugated]


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
    brackets: bool = True

    @classmethod
    def of(cls, text: str | None, mol: Chem.Mol) -> _Hints:
        if text is None or text.startswith("InChI=") or "\n" in text:
            return cls()
        plain = "<" not in text and ">" not in text
        if plain and "[" in text:
            plain = not mol.HasSubstructMatch(_dative_query())
        return cls(
            chiral="@" in text,
            directional="/" in text or "\\" in text,
            plain_bonds=plain,
            brackets="[" in text,
        )


_DATIVE: list[Any] = []


def _dative_query() -> Any:
    if not _DATIVE:
        from rdkit import Chem

        _DATIVE.append(Chem.MolFromSmarts("*->*"))
    return _DATIVE[0]


_DEGREE, _NUM_HS = 2, 4  # columns of ATOM_FEATURES (checked in lookup_tables)

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


@dataclass
class _Arrays:
    """A featurized list of molecules as numpy arrays (bond ends local to each molecule)."""

    x: np.ndarray  # [atoms, atom columns]
    ends: np.ndarray  # [bonds, 2], atom indices within the molecule
    bond_attr: np.ndarray  # [bonds, bond columns]
    n_atoms: np.ndarray  # [molecules]
    n_bonds: np.ndarray  # [molecules]

    def take(self, rows: np.ndarray) -> _Arrays:
        """The molecules at positions ``rows`` (repeats allowed), in that order."""
        atoms = _ranges(self.n_atoms, rows)
        bonds = _ranges(self.n_bonds, rows)
        return _Arrays(
            self.x[atoms], self.ends[bonds], self.bond_attr[bonds], self.n_atoms[rows], self.n_bonds[rows]
        )


def _ranges(counts: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Concatenated index ranges ``[start[r], start[r] + counts[r])`` for each ``r`` in ``rows``."""
    starts = np.concatenate([[0], np.cumsum(counts)])[:-1][rows]
    sizes = counts[rows]
    out_starts = np.concatenate([[0], np.cumsum(sizes)])[:-1]
    return np.arange(int(sizes.sum()), dtype=np.int64) + np.repeat(starts - out_starts, sizes)


def _featurize_arrays(
    mols: Sequence[Chem.Mol], hints: Sequence[_Hints] | None, schema: FeatureSchema
) -> _Arrays:
    tables = lookup_tables(schema)
    atom_cols: list[Any] = [[] for _ in tables.atom]
    bond_cols: list[list[int]] = [[] for _ in range(2 + len(tables.bond))]
    n_atoms = np.zeros(len(mols), dtype=np.int64)
    n_bonds = np.zeros(len(mols), dtype=np.int64)
    for i, mol in enumerate(mols):
        hint = EXACT if hints is None else hints[i]
        if hint.plain_bonds:
            raw, raw_b = _raw_fast(mol, hint)
        else:
            raw, raw_b = _raw_atoms(mol, hint), _raw_bonds(mol, hint)
        n_atoms[i] = len(raw[0])
        for col, values in zip(atom_cols, raw, strict=True):
            col.extend(values)
        n_bonds[i] = len(raw_b[0])
        for col, values in zip(bond_cols, raw_b, strict=True):
            col.extend(values)
    total = int(n_atoms.sum())
    offsets = np.repeat(np.concatenate([[0], np.cumsum(n_atoms)])[:-1], n_bonds)
    ends = np.empty((len(offsets), 2), dtype=np.int64)
    ends[:, 0] = bond_cols[0]
    ends[:, 1] = bond_cols[1]
    # RDKit's GetTotalDegree is GetDegree (bonds in the graph) + GetTotalNumHs(False): one count per batch.
    atom_cols[_DEGREE] = np.bincount((ends + offsets[:, None]).reshape(-1), minlength=total) + np.asarray(
        atom_cols[_NUM_HS], dtype=np.int64
    )
    x = np.empty((total, len(tables.atom)), dtype=np.int64)
    for j, (col, (table, low, other)) in enumerate(zip(atom_cols, tables.atom, strict=True)):
        x[:, j] = _codes(np.asarray(col, dtype=np.int64), table, low, other)
    bond_attr = np.empty((len(offsets), len(tables.bond)), dtype=np.int64)
    for j, (col, (table, low, other)) in enumerate(zip(bond_cols[2:], tables.bond, strict=True)):
        bond_attr[:, j] = _codes(np.asarray(col, dtype=np.int64), table, low, other)
    return _Arrays(x, ends, bond_attr, n_atoms, n_bonds)


def _assemble(arrays: _Arrays, texts: list[str]) -> Batch:
    """One :class:`~torch_geometric.data.Batch`, built directly (not through ``Batch.from_data_list``)."""
    import torch
    from torch_geometric.data import Batch

    n_atoms, n_bonds = arrays.n_atoms, arrays.n_bonds
    node_ptr = np.concatenate([[0], np.cumsum(n_atoms)])
    edge_ptr = 2 * np.concatenate([[0], np.cumsum(n_bonds)])
    global_ends = arrays.ends + np.repeat(node_ptr[:-1], n_bonds)[:, None]
    begin, end = global_ends[:, 0], global_ends[:, 1]
    edge_index = np.stack([np.stack([begin, end], 1).reshape(-1), np.stack([end, begin], 1).reshape(-1)])
    edge_attr = np.repeat(arrays.bond_attr, 2, axis=0)
    n = len(n_atoms)
    node_ptr_t = torch.from_numpy(node_ptr)
    edge_ptr_t = torch.from_numpy(edge_ptr)
    batch = Batch(
        x=torch.from_numpy(np.ascontiguousarray(arrays.x)),
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
    from rdkit import Chem

    texts = list(smiles) if smiles is not None else [Chem.MolToSmiles(m) for m in mols]
    return _assemble(_featurize_arrays(mols, _hints, schema), texts)


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
    # Each distinct string is parsed and featurized once; repeats copy its rows.
    first: dict[str, int] = {}
    unique: list[Any] = []
    inverse = np.empty(len(texts), dtype=np.int64)
    for i, text in enumerate(texts):
        j = first.setdefault(text, len(unique)) if isinstance(text, str) else len(unique)
        if j == len(unique):
            unique.append(text)
        inverse[i] = j
    mols, kept_u, errors_u = parse_many(unique)
    row_of = np.full(len(unique), -1, dtype=np.int64)
    row_of[kept_u] = np.arange(len(kept_u))
    reason_of = dict(errors_u)
    rows = row_of[inverse]
    kept = np.flatnonzero(rows >= 0).tolist()
    errors = [(i, reason_of[int(j)]) for i, j in enumerate(inverse) if rows[i] < 0]
    if errors and on_error == "raise":
        i, reason = errors[0]
        raise MoleculeError(f"molecule {i} ({texts[i]!r}): {reason}")
    hints = [_Hints.of(unique[j], m) for j, m in zip(kept_u, mols, strict=True)]
    arrays = _featurize_arrays(mols, hints, schema)
    if len(kept) != len(mols):
        arrays = arrays.take(rows[kept])
    batch = _assemble(arrays, [texts[i] for i in kept])
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
