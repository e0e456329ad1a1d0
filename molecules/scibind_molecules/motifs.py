"""Motifs (BRICS fragments, ring systems, functional groups) and the hierarchical atom-motif-molecule graph.

A molecule's motifs are atom sets of three kinds:

- ``brics``: the fragments left when RDKit's BRICS bonds (``BRICS.FindBRICSBonds``) are cut; they partition
  the atoms, so every atom belongs to at least one motif;
- ``ring``: ring systems, i.e. SSSR rings merged while they share an atom (fused and spiro rings form one);
- ``group``: functional groups from :data:`FUNCTIONAL_GROUPS` (SMARTS, tried in order; a match is kept only
  when none of its atoms is already in a kept group, so an ester's oxygen is not also an ether).

:func:`hierarchical_graph` adds them to an atom graph as a :class:`MotifData`: motif nodes with integer
features ``motif_x`` (kind, group, size, aromatic; :data:`MOTIF_DIMS` codes per column), atom→motif
membership edges ``atom_motif_index`` (row 0 atom, row 1 motif) and motif-motif edges ``motif_edge_index``
(both directions) between motifs that share an atom or are joined by a bond. The molecule level is the
graph itself (``batch`` / :func:`motif_batch` map atoms and motifs to it). ``Batch.from_data_list``
offsets the indices correctly.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
from torch_geometric.data import Data

if TYPE_CHECKING:
    from rdkit import Chem
    from torch_geometric.data import Batch

__all__ = [
    "FUNCTIONAL_GROUPS",
    "MOTIF_DIMS",
    "MOTIF_KINDS",
    "Motif",
    "MotifData",
    "brics_motifs",
    "featurize_hierarchical",
    "find_motifs",
    "functional_group_motifs",
    "hierarchical_graph",
    "motif_batch",
    "ring_system_motifs",
]

MotifKind = Literal["brics", "ring", "group"]
MOTIF_KINDS: tuple[MotifKind, ...] = ("brics", "ring", "group")

FUNCTIONAL_GROUPS: tuple[tuple[str, str], ...] = (
    # Recursive SMARTS ($(...)) check the context without making its atoms part of the group.
    ("carboxylic_acid", "[CX3](=O)[OX2H1]"),
    ("carboxylate", "[CX3](=O)[OX1-]"),
    ("ester", "[#6X3](=O)[OX2;$(O[#6])]"),
    ("amide", "[#6X3](=O)[#7X3]"),
    ("nitro", "[N+](=O)[O-]"),
    ("sulfonamide", "[SX4](=O)(=O)[NX3]"),
    ("sulfonyl", "[SX4](=O)(=O)"),
    ("phosphate", "[PX4](=O)([OX2,OX1-])[OX2,OX1-]"),
    ("aldehyde", "[CX3H1;$(C[#6]),$([CH2])]=O"),
    ("ketone", "[#6X3;$([#6]([#6])[#6])]=O"),
    ("nitrile", "[CX2]#[NX1]"),
    ("imine", "[CX3]=[NX2;!a]"),
    ("alkyne", "[CX2]#[CX2]"),
    ("alkene", "[CX3;!a]=[CX3;!a]"),
    ("hydroxyl", "[OX2H1;$(O[#6])]"),
    ("thiol", "[SX2H1]"),
    ("ether", "[OX2;!a;$(O([#6])[#6])]"),
    ("thioether", "[SX2;!a;$(S([#6])[#6])]"),
    ("amine", "[NX3;!a;!$(N[#6,#16,#15]=[O,S,N]);!$(N~[!#6;!#1])]"),
    ("halogen", "[F,Cl,Br,I]"),
)
"""Functional groups as ``(name, SMARTS)``, in priority order."""

_SIZE_CODES = 16
MOTIF_DIMS: list[int] = [len(MOTIF_KINDS), len(FUNCTIONAL_GROUPS) + 1, _SIZE_CODES + 1, 2]
"""Codes per ``motif_x`` column: kind, group (0: not a group, else 1 + index in :data:`FUNCTIONAL_GROUPS`),
size (atoms, ``>= 16`` -> 16), aromatic (any aromatic atom)."""


@dataclass(frozen=True)
class Motif:
    """One motif: its kind, atom indices (sorted) and label (the group name, ``ring`` or ``brics``)."""

    kind: MotifKind
    atoms: tuple[int, ...]
    label: str


def brics_motifs(mol: Chem.Mol) -> list[Motif]:
    """BRICS fragments (atom sets, ordered by their lowest atom); a molecule without BRICS bonds is one."""
    from rdkit import Chem
    from rdkit.Chem import BRICS

    bonds = sorted({mol.GetBondBetweenAtoms(i, j).GetIdx() for (i, j), _ in BRICS.FindBRICSBonds(mol)})
    cut = Chem.FragmentOnBonds(mol, bonds, addDummies=False) if bonds else mol
    frags = [tuple(sorted(f)) for f in Chem.GetMolFrags(cut, asMols=False, sanitizeFrags=False)]
    return [Motif("brics", f, "brics") for f in sorted(frags)]


def ring_system_motifs(mol: Chem.Mol) -> list[Motif]:
    """Ring systems: SSSR rings merged while they share an atom (ordered by their lowest atom)."""
    systems: list[set[int]] = []
    for ring in mol.GetRingInfo().AtomRings():
        merged = set(ring)
        rest = []
        for system in systems:
            if system & merged:
                merged |= system
            else:
                rest.append(system)
        systems = [*rest, merged]
    return [Motif("ring", tuple(sorted(s)), "ring") for s in sorted(systems, key=min)]


_QUERIES: list[tuple[str, Any]] = []


def _queries() -> list[tuple[str, Any]]:
    if not _QUERIES:
        from rdkit import Chem

        for name, smarts in FUNCTIONAL_GROUPS:
            query = Chem.MolFromSmarts(smarts)
            if query is None:  # pragma: no cover - the table is tested
                raise ValueError(f"bad SMARTS for {name}: {smarts}")
            _QUERIES.append((name, query))
    return _QUERIES


def functional_group_motifs(mol: Chem.Mol) -> list[Motif]:
    """Functional groups of :data:`FUNCTIONAL_GROUPS`; each atom is in at most one (first match wins)."""
    claimed: set[int] = set()
    found: list[Motif] = []
    for name, query in _queries():
        for match in mol.GetSubstructMatches(query):
            atoms = set(match)
            if atoms & claimed:
                continue
            claimed |= atoms
            found.append(Motif("group", tuple(sorted(atoms)), name))
    return sorted(found, key=lambda m: m.atoms)


def find_motifs(mol: Chem.Mol, kinds: Iterable[MotifKind] = MOTIF_KINDS) -> list[Motif]:
    """The motifs of ``mol`` of the given kinds, BRICS fragments first, then ring systems, then groups."""
    wanted = set(kinds)
    unknown = wanted - set(MOTIF_KINDS)
    if unknown:
        raise ValueError(f"unknown motif kinds {sorted(unknown)}; choose from {MOTIF_KINDS}")
    out: list[Motif] = []
    if "brics" in wanted:
        out += brics_motifs(mol)
    if "ring" in wanted:
        out += ring_system_motifs(mol)
    if "group" in wanted:
        out += functional_group_motifs(mol)
    return out


class MotifData(Data):
    """A molecule graph with motif nodes; ``Batch.from_data_list`` offsets the motif indices."""

    def __inc__(self, key: str, value: Any, *args: Any, **kwargs: Any) -> Any:
        if key == "atom_motif_index":
            return torch.tensor([[self.num_nodes], [self.num_motifs]])
        if key == "motif_edge_index":
            return self.num_motifs
        return super().__inc__(key, value, *args, **kwargs)

    @property
    def num_motifs(self) -> int:
        """Number of motif nodes."""
        return int(self.motif_x.size(0)) if "motif_x" in self else 0


def motif_batch(batch: Any) -> torch.Tensor:
    """The molecule of each motif node of a (batched) :class:`MotifData`: ``int64[num_motifs]``."""
    atom, motif = batch.atom_motif_index
    graph = batch.batch if getattr(batch, "batch", None) is not None else torch.zeros_like(batch.x[:, 0])
    out = torch.zeros(batch.motif_x.size(0), dtype=torch.long, device=motif.device)
    return out.scatter_(0, motif, graph[atom])


def _motif_tensors(mol: Chem.Mol, motifs: Sequence[Motif]) -> dict[str, torch.Tensor]:
    group_code = {name: i + 1 for i, (name, _) in enumerate(FUNCTIONAL_GROUPS)}
    aromatic = np.array([a.GetIsAromatic() for a in mol.GetAtoms()], dtype=bool)
    motif_x = np.array(
        [
            [
                MOTIF_KINDS.index(m.kind),
                group_code.get(m.label, 0),
                min(len(m.atoms), _SIZE_CODES),
                int(aromatic[list(m.atoms)].any()),
            ]
            for m in motifs
        ],
        dtype=np.int64,
    ).reshape(-1, len(MOTIF_DIMS))
    atoms = np.array([a for m in motifs for a in m.atoms], dtype=np.int64)
    owners = np.repeat(np.arange(len(motifs)), [len(m.atoms) for m in motifs])
    n = mol.GetNumAtoms()
    member = np.zeros((n, len(motifs)), dtype=np.int64)
    member[atoms, owners] = 1
    adjacency = np.eye(n, dtype=np.int64)
    for bond in mol.GetBonds():
        i, j = bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()
        adjacency[i, j] = adjacency[j, i] = 1
    touching = member.T @ adjacency @ member  # > 0: share an atom or a bond joins them
    np.fill_diagonal(touching, 0)
    src, dst = np.nonzero(touching)
    return {
        "motif_x": torch.from_numpy(motif_x),
        "atom_motif_index": torch.from_numpy(np.stack([atoms, owners]).reshape(2, -1)),
        "motif_edge_index": torch.from_numpy(np.stack([src, dst]).astype(np.int64).reshape(2, -1)),
    }


def hierarchical_graph(
    mol: Chem.Mol, data: Data | None = None, *, kinds: Iterable[MotifKind] = MOTIF_KINDS
) -> MotifData:
    """The atom graph of ``mol`` (``data``, or featurized here) with its motif nodes and edges.

    Args:
        mol: A sanitized molecule.
        data: Its atom graph from :func:`~.featurize.featurize_mol` (same atom order).
        kinds: Motif kinds to include.

    Returns:
        A :class:`MotifData` with the fields of ``data`` plus ``motif_x``, ``atom_motif_index`` and
        ``motif_edge_index``.
    """
    if data is None:
        from scibind_molecules.featurize import featurize_mol

        data = featurize_mol(mol)
    if data.num_nodes != mol.GetNumAtoms():
        raise ValueError(f"the graph has {data.num_nodes} atoms but the molecule {mol.GetNumAtoms()}")
    fields = {key: value for key, value in data.items()}
    return MotifData(**fields, **_motif_tensors(mol, find_motifs(mol, kinds)))


def featurize_hierarchical(
    smiles: Sequence[str],
    on_error: Literal["raise", "skip"] = "raise",
    *,
    kinds: Iterable[MotifKind] = MOTIF_KINDS,
) -> Batch:
    """SMILES -> one batch of hierarchical graphs (atoms from :func:`~.featurize.featurize_smiles`).

    ``batch.source_index`` holds the input position of each graph (with ``on_error="skip"``).
    """
    from torch_geometric.data import Batch

    from scibind_molecules.chem import parse_molecule
    from scibind_molecules.featurize import featurize_smiles

    kinds = tuple(kinds)
    atoms = featurize_smiles(list(smiles), on_error=on_error)
    graphs = []
    for i in range(atoms.num_graphs):
        data = atoms.get_example(i)
        mol = parse_molecule(data.smiles, max_heavy_atoms=None)
        graphs.append(hierarchical_graph(mol, data, kinds=kinds))
    return Batch.from_data_list(graphs)
