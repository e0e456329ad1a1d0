"""A straightforward per-atom featurizer: the specification the fast featurizer must match exactly."""

from __future__ import annotations

import torch
from scibind_molecules.schema import ATOM_FEATURES, BOND_FEATURES


def _code(vocab: tuple, value: object) -> int:
    return vocab.index(value) if value in vocab else len(vocab)


def reference_features(mol) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(x, edge_index, edge_attr)`` computed atom by atom and bond by bond with RDKit's accessors."""
    x = []
    for atom in mol.GetAtoms():
        raw = {
            "atomic_num": atom.GetAtomicNum(),
            "chirality": str(atom.GetChiralTag()),
            "degree": atom.GetTotalDegree(),
            "formal_charge": atom.GetFormalCharge(),
            "num_hs": atom.GetTotalNumHs(),
            "num_radical_electrons": atom.GetNumRadicalElectrons(),
            "hybridization": str(atom.GetHybridization()),
            "is_aromatic": atom.GetIsAromatic(),
            "is_in_ring": atom.IsInRing(),
        }
        x.append([_code(vocab, raw[name]) for name, vocab in ATOM_FEATURES.items()])
    edges, attrs = [], []
    for bond in mol.GetBonds():
        raw = {
            "bond_type": str(bond.GetBondType()),
            "stereo": str(bond.GetStereo()),
            "is_conjugated": bond.GetIsConjugated(),
        }
        codes = [_code(vocab, raw[name]) for name, vocab in BOND_FEATURES.items()]
        i, j = bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()
        edges += [(i, j), (j, i)]
        attrs += [codes, codes]
    edge_index = torch.tensor(edges, dtype=torch.long).t().reshape(2, -1)
    edge_attr = torch.tensor(attrs, dtype=torch.long).reshape(-1, len(BOND_FEATURES))
    return torch.tensor(x, dtype=torch.long), edge_index, edge_attr
