"""A frozen text encoder with a per-text cache: long descriptions (ChEBI-20) are embedded once.

all-MiniLM-L6-v2 embeds a ChEBI-20 description in tens of milliseconds on a CPU; a frozen tower gives the
same output every epoch, so recomputing it is pure waste. :class:`CachedTextEncoder` wraps any registered
text encoder, freezes it, and memoises its output per text, in memory and optionally on disk
(``cache_dir``: one folder per base encoder and options, safetensors shards, shared by runs). With
``tokens=True`` it also keeps each text's token states, for token-level objectives (``molecules/orma``,
``core/filip``). To fine-tune the text tower use the wrapped encoder directly (``core/minilm`` with
``freeze: false``).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from scibind.errors import DataError
from torch import nn

__all__ = ["CachedTextEncoder", "CachedTokenTextEncoder", "cached_text", "tiny_cached_text"]


def _text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


class CachedTextEncoder(nn.Module):
    """A frozen text encoder whose outputs are cached per text.

    Args:
        base: Registered text encoder to wrap (default ``core/minilm``).
        base_kwargs: Its options (``max_length``, ``pooling``...).
        chunk_size: Texts embedded per forward pass of the base encoder on a cache miss.
        tokens: Also cache token states (the base encoder's ``forward_tokens``, stored as float16; the
            :class:`CachedTokenTextEncoder` subclass, which :func:`cached_text` builds, offers them). The
            pooled embedding is then the mean of the real tokens (what ``core/minilm`` with
            ``pooling: mean`` computes), so one pass gives both.
        cache_dir: Keep the cache on disk in ``<cache_dir>/<digest of base, options, tokens>/`` as well, and
            read what earlier runs stored there (safetensors; no pickles).

    Attributes:
        modality: ``"text"``.
        embed_dim: The base encoder's width.
    """

    modality = "text"

    def __init__(
        self,
        base: str = "core/minilm",
        base_kwargs: dict[str, Any] | None = None,
        chunk_size: int = 64,
        tokens: bool = False,
        cache_dir: str | None = None,
    ) -> None:
        super().__init__()
        import scibind

        encoder = scibind.create_encoder(base, **dict(base_kwargs or {}))
        if encoder.modality != "text":
            raise DataError(f"CachedTextEncoder wraps text encoders; {base!r} encodes {encoder.modality!r}")
        if tokens and not callable(getattr(encoder, "forward_tokens", None)):
            raise DataError(f"tokens=True needs a base encoder with forward_tokens; {base!r} has none")
        encoder.requires_grad_(False)
        encoder.eval()
        # Kept out of the module tree: its weights are the package's, not the run's, and must not be saved
        # into (or loaded from) checkpoints as trainable state.
        self._base = [encoder]
        self.embed_dim = int(encoder.embed_dim)
        self.chunk_size = chunk_size
        self.tokens = bool(tokens)
        self._cache: dict[str, torch.Tensor] = {}
        self._token_cache: dict[str, torch.Tensor] = {}
        self._dir: Path | None = None
        if cache_dir is not None:
            identity = {"base": base, "base_kwargs": dict(base_kwargs or {}), "tokens": self.tokens}
            digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]
            self._dir = Path(cache_dir) / f"{base.replace('/', '-')}-{digest}"
            self._load_disk()
        self.register_buffer("_device_marker", torch.zeros(0))

    # -- cache ----------------------------------------------------------------------------------------------

    def _load_disk(self) -> None:
        from safetensors.torch import load_file

        assert self._dir is not None
        for shard in sorted(self._dir.glob("*.safetensors")):
            for name, value in load_file(str(shard)).items():
                kind, key = name.split(":", 1)
                (self._cache if kind == "pooled" else self._token_cache)[key] = value

    def _save_disk(self, entries: dict[str, torch.Tensor]) -> None:
        from safetensors.torch import save_file

        assert self._dir is not None
        self._dir.mkdir(parents=True, exist_ok=True)
        name = hashlib.sha256("".join(sorted(entries)).encode()).hexdigest()[:20]
        tmp = self._dir / f".{name}.{os.getpid()}.tmp"
        save_file({k: v.contiguous() for k, v in entries.items()}, str(tmp))
        os.replace(tmp, self._dir / f"{name}.safetensors")

    def _fill(self, texts: list[str]) -> list[str]:
        """Embed the texts missing from the cache; return the cache keys of ``texts``."""
        if isinstance(texts, str) or not isinstance(texts, Sequence):
            raise DataError(f"CachedTextEncoder expects a list of strings, got {type(texts).__name__}")
        keys = [_text_key(t) for t in texts]
        missing = list({k: t for k, t in zip(keys, texts, strict=True) if k not in self._cache}.items())
        encoder = self._base[0]
        new: dict[str, torch.Tensor] = {}
        with torch.no_grad():
            for start in range(0, len(missing), self.chunk_size):
                chunk_keys = [k for k, _ in missing[start : start + self.chunk_size]]
                chunk = [t for _, t in missing[start : start + self.chunk_size]]
                if not self.tokens:
                    out = encoder(chunk).float().cpu()
                    self._cache.update(zip(chunk_keys, out, strict=True))
                    new.update({f"pooled:{k}": v for k, v in zip(chunk_keys, out, strict=True)})
                    continue
                hidden = encoder.forward_tokens(chunk).float().cpu()
                mask = torch.as_tensor(encoder.token_mask(chunk)).cpu().bool()
                weights = mask[..., None].float()
                pooled = (hidden * weights).sum(1) / weights.sum(1).clamp_min(1e-9)
                for k, h, m, p in zip(chunk_keys, hidden, mask, pooled, strict=True):
                    self._cache[k] = p
                    self._token_cache[k] = h[m].half()
                    new[f"pooled:{k}"] = p
                    new[f"tokens:{k}"] = self._token_cache[k]
        if new and self._dir is not None:
            self._save_disk(new)
        return keys

    # -- encoder API ----------------------------------------------------------------------------------------

    def forward(self, data: Sequence[str]) -> torch.Tensor:
        """Embed texts: ``float32[n, embed_dim]`` (no gradient; the base encoder is frozen)."""
        keys = self._fill(data)
        if not keys:
            return torch.zeros(0, self.embed_dim, device=self._device_marker.device)
        return torch.stack([self._cache[k] for k in keys]).to(self._device_marker.device)

    def _token_states(self, data: Sequence[str]) -> torch.Tensor:
        keys = self._fill(data)
        rows = [self._token_cache[k] for k in keys]
        width = max((len(r) for r in rows), default=1)
        out = torch.zeros(len(rows), width, self.embed_dim)
        for i, r in enumerate(rows):
            out[i, : len(r)] = r.float()
        return out.to(self._device_marker.device)

    def _token_mask(self, data: Sequence[str]) -> torch.Tensor:
        keys = self._fill(data)
        counts = torch.tensor([len(self._token_cache[k]) for k in keys], dtype=torch.int64)
        width = int(counts.max()) if len(keys) else 1
        mask = torch.arange(width)[None, :] < counts[:, None]
        return mask.to(self._device_marker.device)


class CachedTokenTextEncoder(CachedTextEncoder):
    """:class:`CachedTextEncoder` with ``tokens=True``: it also has ``forward_tokens`` and ``token_mask``.

    A separate class so that an encoder without cached tokens has no ``forward_tokens`` (token-level
    objectives then use its pooled embedding instead of failing).
    """

    def forward_tokens(self, data: Sequence[str]) -> torch.Tensor:
        """Cached token states ``float32[n, T, embed_dim]``, zero past each text's tokens."""
        return self._token_states(data)

    def token_mask(self, data: Sequence[str]) -> torch.Tensor:
        """``bool[n, T]``: which rows of :meth:`forward_tokens` are tokens."""
        return self._token_mask(data)


def cached_text(
    base: str = "core/minilm",
    base_kwargs: dict[str, Any] | None = None,
    chunk_size: int = 64,
    tokens: bool = False,
    cache_dir: str | None = None,
) -> CachedTextEncoder:
    """A :class:`CachedTextEncoder`, or with ``tokens=True`` a :class:`CachedTokenTextEncoder`."""
    cls = CachedTokenTextEncoder if tokens else CachedTextEncoder
    return cls(base, base_kwargs, chunk_size=chunk_size, tokens=tokens, cache_dir=cache_dir)


def tiny_cached_text(
    embed_dim: int = 32, tokens: bool = False, cache_dir: str | None = None
) -> CachedTextEncoder:
    """``core/tiny-text`` (random, frozen) behind the cache, for tests."""
    return cached_text("core/tiny-text", {"embed_dim": embed_dim}, tokens=tokens, cache_dir=cache_dir)
