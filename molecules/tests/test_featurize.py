"""The fast featurizer equals the per-atom reference on real molecules; errors carry RDKit's reason."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rdkit import Chem
from scibind_molecules import SCHEMA, featurize_smiles
from scibind_molecules.chem import MoleculeError
from scibind_molecules.featurize import featurize_mols

from .reference import reference_features

TRICKY = [
    "[NH3]->[Cu]",  # dative bond
    "C$C",  # quadruple bond: "other" bond type
    "F/C=C/F",  # E double bond
    "F/C=C\\F",
    "C[C@H](N)C(=O)O",  # chirality
    "[CH3]",  # radical
    "[O-][N+](=O)c1ccccc1",  # charges
    "[Na+].[Cl-]",  # salt: disconnected fragments
    "c1ccc2ccccc2c1",
    "[2H]C([2H])([2H])O",
    "[U+6]",  # charge beyond the vocabulary
    "C[Si](C)(C)C",
    "[H][H]",
    "CN(=O)=O",  # nitro written pentavalent: sanitization charges it
    "[CH2]C=C",  # allyl radical next to a double bond
    "CC[N+](C)(C)C",  # charged, all single bonds
    "C1CC1C",  # saturated ring: in ring, not aromatic, nothing conjugated
    "OC(=O)C1CC1",  # conjugated single bond (O-C=O)
    "c1cc[nH]c1",
    "[Fe+2].[O-]C(=O)c1ccccc1",
]


def _assert_same(batch, mols) -> None:
    for i, mol in enumerate(mols):
        data = batch.get_example(i)
        x, edge_index, edge_attr = reference_features(mol)
        assert torch.equal(data.x, x), Chem.MolToSmiles(mol)
        assert torch.equal(data.edge_index, edge_index), Chem.MolToSmiles(mol)
        assert torch.equal(data.edge_attr, edge_attr), Chem.MolToSmiles(mol)


def test_identical_to_reference_on_real_molecules(chebi_rows, nci_smiles):
    # A deterministic third of ChEBI-20 and a fifth of NCI keep the pure-Python reference within seconds.
    smiles = [row[1] for row in chebi_rows[::3]] + nci_smiles[::5] + TRICKY
    result = featurize_smiles(smiles, on_error="skip", return_errors=True)
    mols = [Chem.MolFromSmiles(smiles[i]) for i in result.index]
    assert result.batch.num_graphs == len(mols) >= len(smiles) - 5
    _assert_same(result.batch, mols)


def test_every_chebi_molecule_featurizes(chebi_rows):
    batch = featurize_smiles([row[1] for row in chebi_rows])
    assert batch.num_graphs == 3301
    assert batch.x.shape[1] == len(SCHEMA.atom) and batch.edge_attr.shape[1] == len(SCHEMA.bond)
    for column, size in enumerate(SCHEMA.atom_dims):
        assert int(batch.x[:, column].max()) < size


def test_known_values_of_ethanol_and_benzene():
    ethanol = featurize_smiles("CCO")
    # atomic numbers 6, 6, 8 are codes 5, 5, 7; O has one H; no bond is aromatic.
    assert ethanol.x[:, 0].tolist() == [5, 5, 7]
    assert ethanol.x[:, 4].tolist() == [3, 2, 1]
    assert ethanol.edge_index.tolist() == [[0, 1, 1, 2], [1, 0, 2, 1]]
    benzene = featurize_smiles("c1ccccc1")
    assert set(benzene.edge_attr[:, 0].tolist()) == {3}  # AROMATIC
    assert benzene.x[:, 7].tolist() == [1] * 6


def test_skip_reports_each_bad_record_with_rdkits_reason():
    bad = ["CCO", "C1CC(", "", "C(C)(C)(C)(C)C", "InChI=1S/CH4/h1H4", "not a smiles", "c1cccc1"]
    result = featurize_smiles(bad, on_error="skip", return_errors=True)
    assert result.index == [0, 4]
    assert result.batch.source_index.tolist() == [0, 4]
    reasons = dict(result.errors)
    assert "syntax error" in reasons[1]
    assert "empty" in reasons[2]
    assert "valence" in reasons[3].lower()
    assert "kekulize" in reasons[6].lower()
    assert result.batch.get_example(1).x[:, 0].tolist() == [5]  # methane from InChI


def test_raise_names_position_and_reason():
    with pytest.raises(MoleculeError, match=r"molecule 1 .*valence"):
        featurize_smiles(["CC", "C(C)(C)(C)(C)C"])


def test_single_smiles_gives_data_and_batch_round_trips():
    data = featurize_smiles("CC(=O)O")
    batch = featurize_mols([Chem.MolFromSmiles("CC(=O)O"), Chem.MolFromSmiles("N")])
    back = batch.to_data_list()
    assert torch.equal(back[0].x, data.x) and torch.equal(back[0].edge_index, data.edge_index)
    assert back[1].num_nodes == 1 and back[1].edge_index.shape == (2, 0)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from([*TRICKY, "CCO", "c1ccncc1", "O=C=O", "C1CC1"]), min_size=1, max_size=6))
def test_batches_equal_per_molecule_featurization(smiles):
    batch = featurize_smiles(smiles)
    for i, text in enumerate(smiles):
        one = featurize_smiles(text)
        got = batch.get_example(i)
        assert torch.equal(got.x, one.x) and torch.equal(got.edge_index, one.edge_index)
        assert torch.equal(got.edge_attr, one.edge_attr)


def test_repeated_and_bad_inputs_keep_positions():
    texts = ["CCO", "C1CC(", "c1ccccc1", "CCO", "C1CC(", "CCO"]
    result = featurize_smiles(texts, on_error="skip", return_errors=True)
    assert result.index == [0, 2, 3, 5]
    assert [i for i, _ in result.errors] == [1, 4]
    assert result.errors[0][1] == result.errors[1][1]
    assert result.batch.smiles == ["CCO", "c1ccccc1", "CCO", "CCO"]
    mols = [Chem.MolFromSmiles(texts[i]) for i in result.index]
    _assert_same(result.batch, mols)
    assert result.batch.get_example(3).edge_index.tolist() == [[0, 1, 1, 2], [1, 0, 2, 1]]
