"""scibind-molecules: molecular graphs (RDKit -> PyTorch Geometric) aligned with text.

Public API (imported lazily, so ``import scibind_molecules`` stays light):

- :func:`featurize_smiles`: SMILES/InChI -> PyG ``Data``/``Batch`` with the versioned feature schema.
- :data:`SCHEMA`: the featurization schema (vocabularies, digest, RDKit version).
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["SCHEMA", "featurize_smiles"]


def __getattr__(name: str) -> Any:
    if name == "featurize_smiles":
        from scibind_molecules.featurize import featurize_smiles

        return featurize_smiles
    if name == "SCHEMA":
        from scibind_molecules.schema import SCHEMA

        return SCHEMA
    raise AttributeError(f"module 'scibind_molecules' has no attribute {name!r}")
