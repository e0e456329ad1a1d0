"""Slides as bags of tile features (modality ``wsi_bag``): padding collate and pooling encoders.

A ``wsi_bag`` sample is ``{"features": float[N, D], "coords": int[N, 2]}`` with a different ``N`` per slide.
:func:`collate_bags` pads a batch to the largest bag with a ``mask``. Two encoders pool the tiles of a slide
into one vector:

- :class:`ABMILEncoder`: gated attention MIL (Ilse et al. 2018), the CLAM/TRIDENT slide head.
- :class:`PrototypeEncoder`: tiles are softly assigned to learnt prototypes, each prototype pools its tiles
  and the prototypes are combined by attention (the prototype pooling of SongCi).

Both expose :meth:`attention` (one weight per tile) for heatmaps.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from scibind.errors import ShapeError
from torch import nn

__all__ = [
    "ABMILEncoder",
    "GatedAttention",
    "PrototypeEncoder",
    "collate_bags",
    "tiny_abmil",
    "tiny_prototype",
]


def collate_bags(items: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
    """Pad bags to the largest one.

    Args:
        items: ``{"features": [N_i, D], "coords": [N_i, 2]}`` per slide (``coords`` optional).

    Returns:
        ``{"features": float32[B, N, D], "coords": int64[B, N, 2], "mask": bool[B, N]}``; ``mask`` is
        ``True`` for real tiles.

    Raises:
        ShapeError: Bags have different feature widths, or a bag is empty.
    """
    feats = [torch.as_tensor(item["features"], dtype=torch.float32) for item in items]
    widths = {f.shape[-1] for f in feats}
    if len(widths) > 1 or any(f.dim() != 2 for f in feats):
        raise ShapeError(
            f"wsi_bag features must all be [N, D] with one D; got {[tuple(f.shape) for f in feats]}; "
            "extract every slide's features with the same tile encoder"
        )
    if any(len(f) == 0 for f in feats):
        raise ShapeError("a wsi_bag has no tiles; lower min_tissue or check the tissue mask")
    n_max, dim = max(len(f) for f in feats), widths.pop()
    features = torch.zeros(len(feats), n_max, dim)
    coords = torch.zeros(len(feats), n_max, 2, dtype=torch.int64)
    mask = torch.zeros(len(feats), n_max, dtype=torch.bool)
    for i, (f, item) in enumerate(zip(feats, items, strict=True)):
        features[i, : len(f)] = f
        mask[i, : len(f)] = True
        if item.get("coords") is not None:
            coords[i, : len(f)] = torch.as_tensor(item["coords"], dtype=torch.int64)
    return {"features": features, "coords": coords, "mask": mask}


def _bag(data: Any, in_dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    if isinstance(data, Mapping) and "features" in data:
        features = data["features"]
        mask = data.get("mask")
        if features.dim() == 2:
            features = features.unsqueeze(0)
        if mask is None:
            mask = torch.ones(features.shape[:2], dtype=torch.bool, device=features.device)
    elif isinstance(data, torch.Tensor) and data.dim() == 3:
        features, mask = data, torch.ones(data.shape[:2], dtype=torch.bool, device=data.device)
    else:
        raise ShapeError(f"a wsi_bag encoder takes collate_bags output, got {type(data).__name__}")
    if features.shape[-1] != in_dim:
        raise ShapeError(
            f"tile features have width {features.shape[-1]} but the encoder's in_dim is {in_dim}; set "
            f"encoder_kwargs.in_dim={features.shape[-1]}"
        )
    return features.float(), mask.bool().to(features.device)


class GatedAttention(nn.Module):
    """Gated attention scores: ``w · (tanh(V h) ⊙ sigmoid(U h))`` per instance, softmax over the bag."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.v = nn.Linear(dim, hidden)
        self.u = nn.Linear(dim, hidden)
        self.w = nn.Linear(hidden, 1)

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``h [B, N, dim]``, ``mask [B, N]`` -> attention ``[B, N]`` summing to 1 over real instances."""
        scores = self.w(torch.tanh(self.v(h)) * torch.sigmoid(self.u(h))).squeeze(-1)
        scores = scores.masked_fill(~mask, float("-inf"))
        return torch.softmax(scores, dim=1).nan_to_num(0.0)


class ABMILEncoder(nn.Module):
    """Gated attention MIL pooling of tile features into one slide embedding.

    Args:
        in_dim: Width of the tile features.
        embed_dim: Output width.
        hidden_dim: Width of the tile projection and of the attention network.
        dropout: Dropout on the projected tiles (training only).

    Attributes:
        modality: ``"wsi_bag"``.
    """

    modality = "wsi_bag"

    def __init__(
        self, in_dim: int = 32, embed_dim: int = 256, hidden_dim: int = 256, dropout: float = 0.0
    ) -> None:
        super().__init__()
        self.in_dim, self.embed_dim = in_dim, embed_dim
        self.proj = nn.Sequential(
            nn.LayerNorm(in_dim), nn.Linear(in_dim, hidden_dim), nn.GELU(), nn.Dropout(dropout)
        )
        self.attn = GatedAttention(hidden_dim, hidden_dim)
        self.head = nn.Linear(hidden_dim, embed_dim)

    def attention(self, data: Any) -> torch.Tensor:
        """Attention weight of each tile, ``[B, N]`` (0 on padding)."""
        features, mask = _bag(data, self.in_dim)
        return self.attn(self.proj(features), mask)

    def forward(self, data: Any) -> torch.Tensor:
        """``collate_bags`` output -> ``[B, embed_dim]``."""
        features, mask = _bag(data, self.in_dim)
        h = self.proj(features)
        weights = self.attn(h, mask)
        return self.head(torch.einsum("bn,bnd->bd", weights, h))


class PrototypeEncoder(nn.Module):
    """Prototype pooling: soft assignment of tiles to ``n_prototypes`` learnt prototypes, then attention.

    Each prototype's vector is the assignment-weighted mean of the tiles it claims; a gated attention over
    the prototypes (only those that claim some tile) gives the slide embedding.

    Args:
        in_dim: Width of the tile features.
        embed_dim: Output width.
        hidden_dim: Width of the projected tiles and prototypes.
        n_prototypes: Number of prototypes.
        temperature: Softmax temperature of the tile-to-prototype assignment (cosine similarities).

    Attributes:
        modality: ``"wsi_bag"``.
    """

    modality = "wsi_bag"

    def __init__(
        self,
        in_dim: int = 32,
        embed_dim: int = 256,
        hidden_dim: int = 256,
        n_prototypes: int = 16,
        temperature: float = 0.1,
    ) -> None:
        super().__init__()
        self.in_dim, self.embed_dim, self.temperature = in_dim, embed_dim, temperature
        self.proj = nn.Sequential(nn.LayerNorm(in_dim), nn.Linear(in_dim, hidden_dim), nn.GELU())
        self.prototypes = nn.Parameter(torch.randn(n_prototypes, hidden_dim) / hidden_dim**0.5)
        self.attn = GatedAttention(hidden_dim, hidden_dim)
        self.head = nn.Linear(hidden_dim, embed_dim)

    def _assign(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        sims = nn.functional.normalize(h, dim=-1) @ nn.functional.normalize(self.prototypes, dim=-1).T
        assign = torch.softmax(sims / self.temperature, dim=-1)  # [B, N, K]
        return assign * mask.unsqueeze(-1)

    def _pool(self, data: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        features, mask = _bag(data, self.in_dim)
        h = self.proj(features)
        assign = self._assign(h, mask)
        mass = assign.sum(dim=1)  # [B, K]
        protos = torch.einsum("bnk,bnd->bkd", assign, h) / mass.clamp_min(1e-6).unsqueeze(-1)
        weights = self.attn(protos, mass > 1e-3)
        return weights, assign, protos

    def attention(self, data: Any) -> torch.Tensor:
        """Per-tile weight: the attention of the prototypes, spread by each tile's assignment, ``[B, N]``."""
        weights, assign, _ = self._pool(data)
        share = assign / assign.sum(dim=1, keepdim=True).clamp_min(1e-6)
        return torch.einsum("bnk,bk->bn", share, weights)

    def forward(self, data: Any) -> torch.Tensor:
        """``collate_bags`` output -> ``[B, embed_dim]``."""
        weights, _, protos = self._pool(data)
        return self.head(torch.einsum("bk,bkd->bd", weights, protos))


def tiny_abmil(in_dim: int = 32, embed_dim: int = 16) -> ABMILEncoder:
    """ABMIL with hidden width 16, for tests."""
    return ABMILEncoder(in_dim=in_dim, embed_dim=embed_dim, hidden_dim=16)


def tiny_prototype(in_dim: int = 32, embed_dim: int = 16) -> PrototypeEncoder:
    """Prototype pooling with 4 prototypes of width 16, for tests."""
    return PrototypeEncoder(in_dim=in_dim, embed_dim=embed_dim, hidden_dim=16, n_prototypes=4)
