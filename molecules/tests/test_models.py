"""Encoders on real molecules, the schema guard on weights, the Text2Mol ranks, the fingerprint features."""

from __future__ import annotations

import pytest
import torch
from scibind_molecules import featurize_smiles
from scibind_molecules.graph_encoders import tiny_graph
from scibind_molecules.heads import ranks
from scibind_molecules.schema import SCHEMA, FeatureSchema, SchemaMismatchError


def test_tokens_and_pooled_embedding_cover_every_atom(chebi_rows):
    batch = featurize_smiles([row[1] for row in chebi_rows[:6]])
    encoder = tiny_graph().eval()
    with torch.no_grad():
        tokens = encoder.forward_tokens(batch)
        pooled = encoder(batch)
    mask = encoder.token_mask(batch)
    counts = torch.bincount(batch.batch)
    assert tokens.shape[:2] == mask.shape == (6, int(counts.max()))
    assert mask.sum(1).tolist() == counts.tolist()
    assert (tokens[~mask] == 0).all() and pooled.shape == (6, 32)


def test_weights_of_another_schema_are_refused():
    trained = tiny_graph()
    state = trained.state_dict()
    fresh = tiny_graph()
    fresh.load_state_dict(state)  # same schema: fine
    other = FeatureSchema(atom={**SCHEMA.atom, "degree": tuple(range(7))})
    state["schema.digest"] = torch.tensor(list(other.digest.encode("ascii")), dtype=torch.uint8)
    with pytest.raises(SchemaMismatchError, match=other.digest):
        fresh.load_state_dict(state)


def test_schema_check_names_the_changed_columns():
    other = FeatureSchema(atom={**SCHEMA.atom, "degree": tuple(range(7))})
    SCHEMA.check(SCHEMA.to_dict(), where="cache")
    with pytest.raises(SchemaMismatchError, match=r"atom\.degree"):
        SCHEMA.check(other.to_dict(), where="cache.parquet")


def test_ranks_follow_the_text2mol_definition():
    gallery = torch.eye(4)
    queries = torch.tensor([[1.0, 0, 0, 0], [0, 0, 1.0, 0], [0, 0, 1.0, 0], [0.6, 0, 0, 0.8]])
    # query 0 finds itself first; query 1 prefers item 2; query 2 is item 2; query 3 scores 0.8 vs 0.6.
    assert ranks(queries, gallery, chunk_size=3).tolist() == [1, 2, 1, 1]


def test_fingerprint_counts_are_log_counts_of_morgan_bits():
    from rdkit import Chem
    from rdkit.Chem import rdFingerprintGenerator
    from scibind_molecules.fingerprint import MorganFeaturizer

    smiles = "CCCCCCO"
    got = MorganFeaturizer(radius=2, n_bits=256)([smiles, smiles])
    gen = rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=256)
    expected = torch.log1p(
        torch.tensor(gen.GetCountFingerprintAsNumPy(Chem.MolFromSmiles(smiles)), dtype=torch.float32)
    )
    torch.testing.assert_close(got[0], expected)
    assert got[0].max() > torch.log1p(torch.tensor(1.0))  # CH2 environments repeat
