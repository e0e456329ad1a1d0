"""Motifs and hierarchical graphs: hand-checked molecules, invariants on real ChEBI-20 SMILES, the encoder."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rdkit import Chem
from scibind.errors import DataError
from scibind_molecules import featurize_smiles
from scibind_molecules.collate import collate_graphs
from scibind_molecules.graph_encoders import tiny_graph, tiny_motif
from scibind_molecules.motifs import (
    FUNCTIONAL_GROUPS,
    MOTIF_DIMS,
    featurize_hierarchical,
    find_motifs,
    hierarchical_graph,
    motif_batch,
)
from scibind_molecules.readers import MoleculeReader

ASPIRIN = "CC(=O)Oc1ccccc1C(=O)O"  # atoms: 0 CH3, 1 C=, 2 =O, 3 O, 4-9 ring, 10 C, 11 =O, 12 OH
CAFFEINE = "Cn1cnc2c1c(=O)n(C)c(=O)n2C"  # atoms: 6 C(=O7) and 10 C(=O11) between ring Ns 8 and 12


def _motifs(smiles: str) -> dict[str, list[tuple]]:
    out: dict[str, list[tuple]] = {"brics": [], "ring": [], "group": []}
    for m in find_motifs(Chem.MolFromSmiles(smiles)):
        out[m.kind].append(m.atoms if m.kind != "group" else (m.label, m.atoms))
    return out


def test_aspirin_motifs_by_hand():
    got = _motifs(ASPIRIN)
    # BRICS cuts acyl C-O (1-3), O-aryl (3-4) and aryl-carboxyl (9-10).
    assert got["brics"] == [(0, 1, 2), (3,), (4, 5, 6, 7, 8, 9), (10, 11, 12)]
    assert got["ring"] == [(4, 5, 6, 7, 8, 9)]
    assert got["group"] == [("ester", (1, 2, 3)), ("carboxylic_acid", (10, 11, 12))]


def test_aspirin_hierarchical_graph_by_hand():
    data = hierarchical_graph(Chem.MolFromSmiles(ASPIRIN))
    # motifs: 0-3 BRICS, 4 ring, 5 ester, 6 acid
    assert data.num_motifs == 7 and data.num_nodes == 13
    assert data.motif_x[:, 0].tolist() == [0, 0, 0, 0, 1, 2, 2]
    assert data.motif_x[:, 2].tolist() == [3, 1, 6, 3, 6, 3, 3]  # sizes
    assert data.motif_x[:, 3].tolist() == [0, 0, 1, 0, 1, 0, 0]  # aromatic
    names = [name for name, _ in FUNCTIONAL_GROUPS]
    assert data.motif_x[5:, 1].tolist() == [1 + names.index("ester"), 1 + names.index("carboxylic_acid")]
    # ether O (BRICS motif 1) shares an atom with the ester and is bonded to the acetyl, ring and aryl parts.
    src, dst = data.motif_edge_index
    assert sorted(dst[src == 1].tolist()) == [0, 2, 4, 5]
    # the acid group touches its BRICS fragment (shared atoms) and the ring (bond 9-10), nothing else.
    assert sorted(dst[src == 6].tolist()) == [2, 3, 4]
    members = data.atom_motif_index
    assert sorted(members[0, members[1] == 4].tolist()) == [4, 5, 6, 7, 8, 9]


def test_caffeine_motifs_by_hand():
    got = _motifs(CAFFEINE)
    assert got["brics"] == [tuple(range(14))]  # no BRICS bond: N-methyls on aromatic N are not cut
    assert got["ring"] == [(1, 2, 3, 4, 5, 6, 8, 10, 12)]  # the fused purine is one ring system
    assert got["group"] == [("amide", (6, 7, 8)), ("amide", (10, 11, 12))]


def test_ring_systems_merge_fused_and_spiro_rings_only():
    assert _motifs("C1CCC2(CC1)CCCC2")["ring"] == [tuple(range(10))]  # spiro
    assert _motifs("c1ccccc1-c1ccccc1")["ring"] == [tuple(range(6)), tuple(range(6, 12))]  # biphenyl
    assert _motifs("CCO")["ring"] == []


def test_batches_offset_motif_indices(chebi_rows):
    smiles = [ASPIRIN, "CCO", CAFFEINE, chebi_rows[0][1]]
    batch = featurize_hierarchical(smiles)
    assert batch.num_graphs == 4
    for i, text in enumerate(smiles):
        one = hierarchical_graph(Chem.MolFromSmiles(text))
        got = batch.get_example(i)
        for key in ("x", "edge_index", "motif_x", "atom_motif_index", "motif_edge_index"):
            assert torch.equal(getattr(got, key), getattr(one, key)), (text, key)
    counts = torch.bincount(motif_batch(batch), minlength=4)
    assert counts.tolist() == [hierarchical_graph(Chem.MolFromSmiles(s)).num_motifs for s in smiles]


def test_motif_encoder_pools_atoms_and_motifs():
    batch = featurize_hierarchical([ASPIRIN, "C", CAFFEINE])
    encoder = tiny_motif().eval()
    with torch.no_grad():
        pooled = encoder(batch)
        tokens, mask = encoder.motif_tokens(batch)
    assert pooled.shape == (3, 32)
    assert mask.sum(1).tolist() == [7, 1, 4]
    assert tokens.shape == (3, 7, 32) and (tokens[~mask] == 0).all()
    with pytest.raises(DataError, match="hierarchical"):
        encoder(featurize_smiles(["CCO"]))  # atom graphs only
    assert tiny_graph()(batch).shape == (3, 32)  # atom-only encoders ignore the motif fields


def test_reader_with_motifs_collates_for_the_encoder():
    reader = MoleculeReader(motifs=True)
    items = [reader.read(s, record_id=str(i)).data for i, s in enumerate([ASPIRIN, "CCO"])]
    batch = collate_graphs(items)
    assert batch.motif_x.shape[0] == 7 + 2
    assert tiny_motif()(batch).shape == (2, 32)


def _check_invariants(mol: Chem.Mol) -> None:
    n = mol.GetNumAtoms()
    motifs = find_motifs(mol)
    brics = [set(m.atoms) for m in motifs if m.kind == "brics"]
    assert sorted(a for f in brics for a in f) == list(range(n))  # BRICS fragments partition the atoms
    rings = [set(m.atoms) for m in motifs if m.kind == "ring"]
    ring_atoms = {a for ring in mol.GetRingInfo().AtomRings() for a in ring}
    assert sum(len(r) for r in rings) == len(ring_atoms) and set().union(*rings) == ring_atoms
    groups = [set(m.atoms) for m in motifs if m.kind == "group"]
    assert sum(len(g) for g in groups) == len(set().union(*groups))  # groups are disjoint
    data = hierarchical_graph(mol)
    assert data.num_motifs == len(motifs)
    assert data.atom_motif_index.shape[1] == sum(len(m.atoms) for m in motifs)
    for column, size in enumerate(MOTIF_DIMS):
        assert int(data.motif_x[:, column].min()) >= 0 and int(data.motif_x[:, column].max()) < size
    pairs = set(map(tuple, data.motif_edge_index.t().tolist()))
    assert all((j, i) in pairs and i != j for i, j in pairs)
    bonded = {(b.GetBeginAtomIdx(), b.GetEndAtomIdx()) for b in mol.GetBonds()}
    bonded |= {(j, i) for i, j in bonded}
    for i, j in list(pairs)[:50]:
        a, b = set(motifs[i].atoms), set(motifs[j].atoms)
        assert a & b or any((u, v) in bonded for u in a for v in b)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_invariants_on_real_chebi_molecules(chebi_rows, data):
    smiles = data.draw(st.sampled_from([row[1] for row in chebi_rows]))
    mol = Chem.MolFromSmiles(smiles)
    if mol is None or mol.GetNumAtoms() > 150:
        return
    _check_invariants(mol)
