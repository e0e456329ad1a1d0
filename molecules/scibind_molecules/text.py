"""A frozen text encoder with a per-text cache: long descriptions (ChEBI-20) are embedded once per run.

all-MiniLM-L6-v2 embeds a ChEBI-20 description in tens of milliseconds on a CPU; a frozen tower gives the
same output every epoch, so recomputing it is pure waste. :class:`CachedTextEncoder` wraps any registered
text encoder, freezes it, and memoises its output per text. To fine-tune the text tower use the wrapped
encoder directly (``core/minilm`` with ``freeze: false``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from scibind.errors import DataError
from torch import nn

__all__ = ["CachedTextEncoder", "tiny_cached_text"]


class CachedTextEncoder(nn.Module):
    """A frozen text encoder whose outputs are cached per text (in memory).

    Args:
        base: Registered text encoder to wrap (default ``core/minilm``).
        base_kwargs: Its options (``max_length``, ``pooling``...).
        chunk_size: Texts embedded per forward pass of the base encoder on a cache miss.

    Attributes:
        modality: ``"text"``.
        embed_dim: The base encoder's width.
    """

    modality = "text"

    def __init__(
        self, base: str = "core/minilm", base_kwargs: dict[str, Any] | None = None, chunk_size: int = 64
    ) -> None:
        super().__init__()
        import scibind

        encoder = scibind.create_encoder(base, **dict(base_kwargs or {}))
        if encoder.modality != "text":
            raise DataError(f"CachedTextEncoder wraps text encoders; {base!r} encodes {encoder.modality!r}")
        encoder.requires_grad_(False)
        encoder.eval()
        # Kept out of the module tree: its weights are the package's, not the run's, and must not be saved
        # into (or loaded from) checkpoints as trainable state.
        self._base = [encoder]
        self.embed_dim = int(encoder.embed_dim)
        self.chunk_size = chunk_size
        self._cache: dict[str, torch.Tensor] = {}
        self.register_buffer("_device_marker", torch.zeros(0))

    def forward(self, data: Sequence[str]) -> torch.Tensor:
        """Embed texts: ``float32[n, embed_dim]`` (no gradient; the base encoder is frozen)."""
        if isinstance(data, str) or not isinstance(data, Sequence):
            raise DataError(f"CachedTextEncoder expects a list of strings, got {type(data).__name__}")
        texts = list(data)
        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        encoder = self._base[0]
        with torch.no_grad():
            for start in range(0, len(missing), self.chunk_size):
                chunk = missing[start : start + self.chunk_size]
                out = encoder(chunk).float().cpu()
                self._cache.update(zip(chunk, out, strict=True))
        if not texts:
            return torch.zeros(0, self.embed_dim, device=self._device_marker.device)
        return torch.stack([self._cache[t] for t in texts]).to(self._device_marker.device)


def tiny_cached_text(embed_dim: int = 32) -> CachedTextEncoder:
    """``core/tiny-text`` (random, frozen) behind the cache, for tests."""
    return CachedTextEncoder("core/tiny-text", {"embed_dim": embed_dim})
