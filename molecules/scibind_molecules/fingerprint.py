"""Morgan fingerprint MLP: the strong, cheap baseline encoder of ``molecule_graph`` batches.

Fingerprints are computed with RDKit from each graph's ``smiles`` (every molecule_graph reader stores it)
and memoised per SMILES, so after the first epoch an MLP step costs only the matrix products.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import numpy as np
import torch
from scibind.errors import ConfigError, DataError
from torch import nn

from scibind_molecules.chem import parse_molecule

__all__ = ["FingerprintEncoder", "MorganFeaturizer", "tiny_fingerprint"]


class MorganFeaturizer:
    """SMILES -> Morgan count fingerprint ``float32[n_bits]`` (``log1p`` of the counts), memoised.

    Args:
        radius: Morgan radius (2 = ECFP4).
        n_bits: Folded fingerprint length.
        log_counts: ``log1p(count)`` instead of raw counts.
        cache_size: Most SMILES kept in memory.
    """

    def __init__(
        self, radius: int = 2, n_bits: int = 2048, log_counts: bool = True, cache_size: int = 200_000
    ):
        from rdkit.Chem import rdFingerprintGenerator

        if radius < 0 or n_bits < 1:
            raise ConfigError(f"need radius >= 0 and n_bits >= 1, got radius={radius}, n_bits={n_bits}")
        self.radius, self.n_bits, self.log_counts = radius, n_bits, log_counts
        self._generator = rdFingerprintGenerator.GetMorganGenerator(radius=radius, fpSize=n_bits)
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_size = cache_size

    def __call__(self, smiles: list[str]) -> torch.Tensor:
        """Fingerprints of ``smiles``: ``float32[len(smiles), n_bits]``.

        Raises:
            MoleculeError: A SMILES RDKit refuses (it was read, so this means it was edited in between).
        """
        rows = []
        for text in smiles:
            row = self._cache.get(text)
            if row is None:
                counts = self._generator.GetCountFingerprintAsNumPy(
                    parse_molecule(text, max_heavy_atoms=None)
                )
                row = counts.astype(np.float32)
                if self.log_counts:
                    row = np.log1p(row)
                self._cache[text] = row
                if len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
            rows.append(row)
        if not rows:
            return torch.zeros(0, self.n_bits)
        return torch.from_numpy(np.stack(rows))


class FingerprintEncoder(nn.Module):
    """MLP over log-count Morgan fingerprints.

    Args:
        radius: Morgan radius.
        n_bits: Fingerprint length.
        hidden_dim: Hidden width.
        n_layers: Hidden layers (>= 1).
        embed_dim: Output width.
        dropout: Dropout after each hidden layer (also applied to the input fingerprint).

    Attributes:
        modality: ``"molecule_graph"``.
        embed_dim: Output width.
    """

    modality = "molecule_graph"

    def __init__(
        self,
        radius: int = 2,
        n_bits: int = 2048,
        hidden_dim: int = 1024,
        n_layers: int = 2,
        embed_dim: int = 512,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        if n_layers < 1 or hidden_dim < 1 or embed_dim < 1:
            raise ConfigError("encoder options n_layers, hidden_dim and embed_dim must be >= 1")
        self.featurizer = MorganFeaturizer(radius, n_bits)
        self.embed_dim = embed_dim
        layers: list[nn.Module] = [nn.Dropout(dropout)]
        width = n_bits
        for _ in range(n_layers):
            layers += [nn.Linear(width, hidden_dim), nn.LayerNorm(hidden_dim), nn.GELU(), nn.Dropout(dropout)]
            width = hidden_dim
        layers.append(nn.Linear(width, embed_dim))
        self.mlp = nn.Sequential(*layers)

    def forward(self, batch: Any) -> torch.Tensor:
        """Embed molecules: ``float32[num_graphs, embed_dim]``.

        Raises:
            DataError: The batch carries no ``smiles`` (it was not made by a molecule_graph reader).
        """
        smiles = getattr(batch, "smiles", None)
        if smiles is None:
            raise DataError(
                "FingerprintEncoder needs the SMILES of each graph (batch.smiles); read molecules with a "
                "molecules/ reader"
            )
        fps = self.featurizer([smiles] if isinstance(smiles, str) else list(smiles))
        return self.mlp(fps.to(self.mlp[-1].weight.device))


def tiny_fingerprint(embed_dim: int = 32, **kwargs: Any) -> FingerprintEncoder:
    """A small :class:`FingerprintEncoder` (512 bits, one hidden layer of 64), for tests."""
    options = {"n_bits": 512, "hidden_dim": 64, "n_layers": 1, "dropout": 0.0, **kwargs}
    return FingerprintEncoder(embed_dim=embed_dim, **options)
