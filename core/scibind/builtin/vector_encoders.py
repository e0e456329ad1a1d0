"""Encoders of precomputed feature vectors and table rows."""

from __future__ import annotations

import torch
from torch import nn

from scibind.errors import ConfigError, ShapeError

__all__ = ["MLPEncoder", "tiny_mlp"]


class MLPEncoder(nn.Module):
    """An MLP over ``[n, in_dim]`` vectors.

    ``n_layers - 1`` hidden blocks (Linear, LayerNorm, GELU, Dropout), then a Linear to ``embed_dim``.

    Args:
        in_dim: Length of the input vectors (the manifest's vector width).
        embed_dim: Output width.
        hidden_dim: Width of the hidden layers.
        n_layers: Number of Linear layers (1 = a linear map).
        dropout: Dropout after each hidden layer.

    Attributes:
        modality: ``"vector"``.
        embed_dim: Output width.
    """

    modality = "vector"

    def __init__(
        self,
        in_dim: int,
        embed_dim: int = 256,
        hidden_dim: int = 512,
        n_layers: int = 2,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        for name, value in (
            ("in_dim", in_dim),
            ("embed_dim", embed_dim),
            ("hidden_dim", hidden_dim),
            ("n_layers", n_layers),
        ):
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"encoder option {name!r} must be an integer >= 1, got {value!r}")
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"encoder option 'dropout' must be in [0, 1), got {dropout}")
        self.in_dim = in_dim
        self.embed_dim = embed_dim
        layers: list[nn.Module] = []
        width = in_dim
        for _ in range(n_layers - 1):
            layers += [nn.Linear(width, hidden_dim), nn.LayerNorm(hidden_dim), nn.GELU()]
            if dropout:
                layers.append(nn.Dropout(dropout))
            width = hidden_dim
        layers.append(nn.Linear(width, embed_dim))
        self.net = nn.Sequential(*layers)

    def forward(self, data: torch.Tensor) -> torch.Tensor:
        """Embed vectors.

        Args:
            data: ``float[n, in_dim]``.

        Returns:
            ``[n, embed_dim]`` in the weights' dtype.

        Raises:
            ShapeError: ``data`` is not ``[n, in_dim]``.
        """
        if not isinstance(data, torch.Tensor) or data.dim() != 2 or data.shape[1] != self.in_dim:
            got = tuple(data.shape) if isinstance(data, torch.Tensor) else type(data).__name__
            raise ShapeError(
                f"vector encoder expects [n, {self.in_dim}] (in_dim={self.in_dim}), got {got}; set the "
                "tower's encoder_kwargs.in_dim to the width of the manifest's vectors"
            )
        weight = self.net[0].weight
        return self.net(data.to(device=weight.device, dtype=weight.dtype))


def tiny_mlp(in_dim: int, embed_dim: int = 32) -> MLPEncoder:
    """A one-hidden-layer MLP (hidden width 64) for tests and demos."""
    return MLPEncoder(in_dim, embed_dim=embed_dim, hidden_dim=64, n_layers=2)
