"""A linear encoder over feature vectors (``Tensor[B, in_dim]`` -> ``Tensor[B, embed_dim]``)."""

from __future__ import annotations

import torch
from scibind.errors import ShapeError
from torch import nn

__all__ = ["LinearEncoder", "tiny_linear"]


class LinearEncoder(nn.Module):
    """``LayerNorm(Linear(x))``: the smallest useful tower for precomputed features.

    Args:
        in_dim: Width of the input vectors.
        embed_dim: Width of the output embedding.
    """

    modality = "vector"

    def __init__(self, in_dim: int, embed_dim: int = 128) -> None:
        super().__init__()
        self.in_dim = in_dim
        self.embed_dim = embed_dim
        self.proj = nn.Linear(in_dim, embed_dim)
        self.norm = nn.LayerNorm(embed_dim)

    def forward(self, data: torch.Tensor) -> torch.Tensor:
        """Embed a batch ``[B, in_dim]``.

        Raises:
            ShapeError: The input is not ``[B, in_dim]``.
        """
        if data.dim() != 2 or data.shape[1] != self.in_dim:
            raise ShapeError(
                f"LinearEncoder expects vectors of shape [B, {self.in_dim}], got {tuple(data.shape)}; "
                "set in_dim to the width of your features"
            )
        return self.norm(self.proj(data.float()))


def tiny_linear(in_dim: int, embed_dim: int = 16) -> LinearEncoder:
    """A :class:`LinearEncoder` with ``embed_dim=16``, for tests."""
    return LinearEncoder(in_dim, embed_dim)
