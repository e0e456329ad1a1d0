"""Profile encoder: an MLP over the feature columns of a morphological profile, with feature dropout."""

from __future__ import annotations

import torch
from scibind.builtin.vector_encoders import MLPEncoder
from scibind.errors import ConfigError

__all__ = ["ProfileEncoder", "tiny_profile"]


class ProfileEncoder(MLPEncoder):
    """The core MLP over profile features, plus feature dropout while training.

    Profiles are redundant (hundreds of correlated CellProfiler features); zeroing a random fraction of
    the (standardised) features per well during training keeps the encoder from relying on a few of them.

    Args:
        in_dim: Number of feature columns.
        embed_dim: Output width.
        hidden_dim: Hidden width.
        n_layers: Linear layers.
        dropout: Dropout after hidden layers.
        feature_dropout: Probability of zeroing each input feature during training.
    """

    def __init__(
        self,
        in_dim: int,
        embed_dim: int = 256,
        hidden_dim: int = 512,
        n_layers: int = 2,
        dropout: float = 0.1,
        feature_dropout: float = 0.2,
    ) -> None:
        super().__init__(in_dim, embed_dim, hidden_dim, n_layers, dropout)
        if not 0.0 <= feature_dropout < 1.0:
            raise ConfigError(f"encoder option 'feature_dropout' must be in [0, 1), got {feature_dropout}")
        self.feature_dropout = feature_dropout

    def forward(self, data: torch.Tensor) -> torch.Tensor:
        """Embed ``float[n, in_dim]`` profiles (features are dropped only in training mode)."""
        if self.training and self.feature_dropout > 0 and isinstance(data, torch.Tensor):
            keep = torch.rand(data.shape, device=data.device) >= self.feature_dropout
            data = data * keep
        return super().forward(data)


def tiny_profile(in_dim: int, embed_dim: int = 32) -> ProfileEncoder:
    """A one-hidden-layer :class:`ProfileEncoder` of width 32, for tests."""
    return ProfileEncoder(in_dim, embed_dim, hidden_dim=32, n_layers=2, dropout=0.0, feature_dropout=0.1)
