"""CellCLIP-style channel-wise image encoder: one shared encoder per channel, channel embeddings, attention.

Each channel plane goes through the same single-channel CNN (the core's residual CNN with ``in_channels=1``,
so its local ``.safetensors`` weights load the same way). A learned embedding of the channel's name
(:data:`scibind_cell_painting.channels.CHANNELS`) is added to each channel token, and a learned query
attends over the tokens of the channels present. Any subset and any order of channels therefore gives a
valid embedding, and the same stain always means the same thing to the model.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from scibind.builtin.image_encoders import CNNEncoder
from scibind.errors import CheckpointError, ConfigError, ShapeError
from torch import nn

from scibind_cell_painting.channels import CHANNELS

__all__ = ["ChannelwiseEncoder", "tiny_channelwise"]


class ChannelwiseEncoder(nn.Module):
    """Shared per-channel CNN + channel embeddings + attention pooling across channels.

    Args:
        embed_dim: Output width.
        token_dim: Width of the per-channel tokens.
        width: Stem width of the per-channel CNN.
        depth: Residual stages of the per-channel CNN.
        n_heads: Attention heads of the pooling across channels (must divide ``token_dim``).
        channel_dropout: During training, drop each present channel with this probability (at least one is
            kept), so the model learns to embed any subset of channels.
        pool_px: Average-pool each plane by this factor first (``2`` quarters the cost; fields are large and
            the per-channel CNN runs ``C`` times).
        backbone_weights: A ``.safetensors`` file of a single-channel core ``CNNEncoder`` (``in_channels=1``,
            same ``width``/``depth``, ``embed_dim=token_dim``) to start the per-channel encoder from.
        weights: A ``.safetensors`` file of a whole ``ChannelwiseEncoder`` (as :meth:`save_weights` writes).

    Attributes:
        modality: ``"cell_painting_image"``.
        embed_dim: Output width.
    """

    modality = "cell_painting_image"

    def __init__(
        self,
        embed_dim: int = 256,
        token_dim: int = 128,
        width: int = 32,
        depth: int = 3,
        n_heads: int = 4,
        channel_dropout: float = 0.0,
        pool_px: int = 1,
        backbone_weights: str | os.PathLike[str] | None = None,
        weights: str | os.PathLike[str] | None = None,
    ) -> None:
        super().__init__()
        if token_dim % n_heads:
            raise ConfigError(f"n_heads ({n_heads}) must divide token_dim ({token_dim})")
        if not 0.0 <= channel_dropout < 1.0:
            raise ConfigError(f"channel_dropout must be in [0, 1), got {channel_dropout}")
        if pool_px < 1:
            raise ConfigError(f"pool_px must be >= 1, got {pool_px}")
        self.embed_dim = embed_dim
        self.channel_dropout = channel_dropout
        self.pool_px = pool_px
        self.channel_encoder = CNNEncoder(
            in_channels=1, embed_dim=token_dim, width=width, depth=depth, weights=backbone_weights
        )
        self.channel_embedding = nn.Embedding(len(CHANNELS), token_dim)
        nn.init.normal_(self.channel_embedding.weight, std=0.02)
        self.query = nn.Parameter(torch.zeros(1, 1, token_dim))
        self.attention = nn.MultiheadAttention(token_dim, n_heads, batch_first=True)
        self.norm = nn.LayerNorm(token_dim)
        self.head = nn.Linear(token_dim, embed_dim)
        if weights is not None:
            self.load_weights(weights)

    def _unpack(self, data: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if not isinstance(data, dict) or "pixels" not in data or "channels" not in data:
            raise ShapeError(
                "the channel-wise encoder expects the cell_painting_image collate output "
                "{'pixels': [n, C, H, W], 'channels': [n, C], 'mask': [n, C]}, got "
                f"{type(data).__name__}; read the view with cell_painting/field"
            )
        pixels, channels = data["pixels"], data["channels"]
        if pixels.dim() != 4 or channels.shape != pixels.shape[:2]:
            raise ShapeError(
                f"pixels {tuple(pixels.shape)} and channels {tuple(channels.shape)} do not fit: expected "
                "[n, C, H, W] and [n, C]"
            )
        mask = data.get("mask")
        if mask is None:
            mask = torch.ones(channels.shape, dtype=torch.bool, device=channels.device)
        elif mask.shape != channels.shape or mask.dtype != torch.bool:
            raise ShapeError(
                f"mask {tuple(mask.shape)} ({mask.dtype}) does not fit channels {tuple(channels.shape)}: "
                "expected bool[n, C]"
            )
        elif not bool(mask.any(1).all()):
            raise ShapeError(
                f"fields {torch.nonzero(~mask.any(1)).flatten().tolist()} of the batch have no channel; "
                "every field needs at least one"
            )
        device = self.head.weight.device
        return pixels.to(device=device, dtype=self.head.weight.dtype), channels.to(device), mask.to(device)

    def token_mask(self, data: Any) -> torch.Tensor:
        """Which channel slots hold a real channel, ``bool[n, C]`` (``False`` at the collate's padding).

        Fields of one batch may carry different channel subsets; :func:`scibind_cell_painting.collate.
        collate_fields` pads the shorter ones, and these slots must count for nothing downstream.
        """
        return self._unpack(data)[2]

    def forward_tokens(self, data: Any) -> torch.Tensor:
        """One token per channel slot, ``[n, C, embed_dim]``; padded slots (:meth:`token_mask`) are zero."""
        pixels, channels, mask = self._unpack(data)
        tokens = self.head(self._channel_tokens(pixels, channels))
        return tokens * mask[..., None].to(tokens.dtype)

    def _channel_tokens(self, pixels: torch.Tensor, channels: torch.Tensor) -> torch.Tensor:
        if self.pool_px > 1:
            pixels = torch.nn.functional.avg_pool2d(pixels, self.pool_px, ceil_mode=True)
        n, c, h, w = pixels.shape
        tokens = self.channel_encoder(pixels.reshape(n * c, 1, h, w)).reshape(n, c, -1)
        return tokens + self.channel_embedding(channels)

    def forward(self, data: Any) -> torch.Tensor:
        """Embed fields.

        Args:
            data: ``{"pixels": float[n, C, H, W], "channels": int64[n, C], "mask": bool[n, C]}``.

        Returns:
            ``[n, embed_dim]``.

        Raises:
            ShapeError: ``data`` is not the cell_painting_image collate output.
        """
        pixels, channels, mask = self._unpack(data)
        return self._pool(self._channel_tokens(pixels, channels), mask)

    def forward_with_tokens(self, data: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`forward` and :meth:`forward_tokens` from one pass of the channel encoder."""
        pixels, channels, mask = self._unpack(data)
        raw = self._channel_tokens(pixels, channels)
        return self._pool(raw, mask), self.head(raw) * mask[..., None].to(raw.dtype)

    def _pool(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Attention pooling of the channel tokens (with channel dropout in training): ``[n, embed_dim]``."""
        if self.training and self.channel_dropout > 0:
            keep = torch.rand(mask.shape, device=mask.device) >= self.channel_dropout
            keep = keep & mask
            # Rows that would lose every channel keep their first present one.
            first = torch.zeros_like(mask)
            first[torch.arange(mask.shape[0]), mask.float().argmax(1)] = True
            mask = torch.where(keep.any(1, keepdim=True), keep, first & mask)
        query = self.query.expand(tokens.shape[0], -1, -1)
        pooled, _ = self.attention(query, tokens, tokens, key_padding_mask=~mask, need_weights=False)
        return self.head(self.norm(pooled[:, 0]))

    def save_weights(self, path: str | os.PathLike[str]) -> Path:
        """Write every weight to a ``.safetensors`` file (atomically) that ``weights=`` loads back."""
        from safetensors.torch import save_file
        from scibind.atomic import atomic_replace

        tensors = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        return atomic_replace(path, lambda tmp: save_file(tensors, str(tmp)))

    def load_weights(self, path: str | os.PathLike[str]) -> None:
        """Load a ``.safetensors`` file written by :meth:`save_weights` (never a pickle).

        Raises:
            ConfigError: The file does not exist or is not ``.safetensors``.
            CheckpointError: Keys or shapes do not match this architecture.
        """
        from safetensors.torch import load_file

        path = Path(path)
        if path.suffix != ".safetensors" or not path.is_file():
            raise ConfigError(f"encoder option 'weights': {path} is not an existing .safetensors file")
        try:
            state = load_file(str(path))
        except Exception as exc:  # safetensors raises its own SafetensorError
            raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from exc
        own = self.state_dict()
        bad = sorted(set(own) ^ set(state)) + sorted(
            k for k in set(own) & set(state) if own[k].shape != state[k].shape
        )
        if bad:
            raise CheckpointError(
                f"{path}: weights do not fit this ChannelwiseEncoder (e.g. {bad[:3]}); set embed_dim, "
                "token_dim, width, depth and n_heads to the values the file was saved with"
            )
        self.load_state_dict(state)


def tiny_channelwise(embed_dim: int = 32, channel_dropout: float = 0.0) -> ChannelwiseEncoder:
    """A :class:`ChannelwiseEncoder` with 16-wide tokens and one CNN stage, for tests and CPU demos."""
    return ChannelwiseEncoder(
        embed_dim=embed_dim, token_dim=16, width=8, depth=1, n_heads=2, channel_dropout=channel_dropout
    )
