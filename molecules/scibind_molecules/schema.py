"""The versioned featurization schema: atom and bond vocabularies, stored with every cache and checkpoint.

A graph's features are integer codes into these vocabularies (one column per vocabulary, the last code of
each column meaning "other"). Encoders embed each column, so a model trained with one vocabulary reads
garbage from graphs featurized with another: PyG's ``from_smiles`` vocabulary changed between 2.1 and 2.3
(OGB#498) without any error. Here the schema is data with a digest; encoders record it in their state and a
mismatch is an error.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from scibind.errors import ConfigError

__all__ = ["ATOM_FEATURES", "BOND_FEATURES", "SCHEMA", "FeatureSchema", "SchemaMismatchError"]

SCHEMA_VERSION = 1

ATOM_FEATURES: dict[str, tuple[Any, ...]] = {
    "atomic_num": tuple(range(1, 119)),
    "chirality": ("CHI_UNSPECIFIED", "CHI_TETRAHEDRAL_CW", "CHI_TETRAHEDRAL_CCW", "CHI_OTHER"),
    "degree": tuple(range(11)),
    "formal_charge": tuple(range(-5, 6)),
    "num_hs": tuple(range(9)),
    "num_radical_electrons": tuple(range(5)),
    "hybridization": ("UNSPECIFIED", "S", "SP", "SP2", "SP3", "SP3D", "SP3D2", "OTHER"),
    "is_aromatic": (False, True),
    "is_in_ring": (False, True),
}
"""Atom feature columns and their vocabularies, in column order; every column has one more code: other."""

BOND_FEATURES: dict[str, tuple[Any, ...]] = {
    "bond_type": ("SINGLE", "DOUBLE", "TRIPLE", "AROMATIC"),
    "stereo": ("STEREONONE", "STEREOANY", "STEREOZ", "STEREOE", "STEREOCIS", "STEREOTRANS"),
    "is_conjugated": (False, True),
}
"""Bond feature columns and their vocabularies, in column order; every column has one more code: other."""


class SchemaMismatchError(ConfigError):
    """Graphs or weights were made with another featurization schema than the one in use."""


def _rdkit_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("rdkit")
    except PackageNotFoundError:
        return "unknown"


@dataclass(frozen=True)
class FeatureSchema:
    """A featurization schema.

    Attributes:
        version: Schema version (bumped whenever a vocabulary or a feature's meaning changes).
        atom: Atom feature column -> vocabulary.
        bond: Bond feature column -> vocabulary.
        rdkit: The RDKit version that featurized (informative: RDKit's perception may change features).
    """

    version: int = SCHEMA_VERSION
    atom: Mapping[str, tuple[Any, ...]] = field(default_factory=lambda: dict(ATOM_FEATURES))
    bond: Mapping[str, tuple[Any, ...]] = field(default_factory=lambda: dict(BOND_FEATURES))
    rdkit: str = field(default_factory=_rdkit_version)

    @property
    def atom_dims(self) -> list[int]:
        """Number of codes of each atom column (vocabulary + "other")."""
        return [len(v) + 1 for v in self.atom.values()]

    @property
    def bond_dims(self) -> list[int]:
        """Number of codes of each bond column (vocabulary + "other")."""
        return [len(v) + 1 for v in self.bond.values()]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (vocabulary entries as strings), with the :attr:`digest`."""
        body = {
            "version": self.version,
            "atom": {k: [str(x) for x in v] for k, v in self.atom.items()},
            "bond": {k: [str(x) for x in v] for k, v in self.bond.items()},
        }
        return {**body, "rdkit": self.rdkit, "digest": _digest(body)}

    @property
    def digest(self) -> str:
        """sha256 (first 16 hex digits) of the version and vocabularies (not of the RDKit version)."""
        return str(self.to_dict()["digest"])

    def check(self, stored: Mapping[str, Any] | str, *, where: str) -> None:
        """Raise when ``stored`` (a schema dict or digest from a cache or checkpoint) differs from this one.

        Args:
            stored: The schema recorded with the cache or weights (its ``to_dict()`` or its digest).
            where: What is being loaded, for the message (a file, a checkpoint).

        Raises:
            SchemaMismatchError: The vocabularies or the version differ.
        """
        digest = stored if isinstance(stored, str) else str(stored.get("digest", ""))
        if digest == self.digest:
            return
        detail = ""
        if isinstance(stored, Mapping):
            mine = self.to_dict()
            changed = [
                f"{part}.{k}"
                for part in ("atom", "bond")
                for k in sorted(set(mine[part]) | set(stored.get(part, {})))
                if mine[part].get(k) != stored.get(part, {}).get(k)
            ]
            detail = f" (version {stored.get('version')} vs {self.version}; differing columns: {changed})"
        raise SchemaMismatchError(
            f"{where} was featurized with schema {digest or '<none>'}{detail}, but this scibind-molecules "
            f"uses schema {self.digest}; re-run featurization (delete the cache) or install the "
            "scibind-molecules version that wrote it"
        )


def _digest(body: Mapping[str, Any]) -> str:
    text = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


SCHEMA = FeatureSchema()
"""The schema this version of scibind-molecules featurizes with."""
