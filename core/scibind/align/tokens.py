"""Token outputs for token-level objectives (``core/filip``): who asks for them and how they are passed.

An objective asks for token embeddings with the class attribute ``needs_tokens = True``; its attribute
``token_views`` (``None`` = every view whose encoder has ``forward_tokens``) says for which views. The
trainer (plain and GradCache steps) then calls::

    objective(embeddings, present, tokens={view: [B, T, D]}, token_masks={view: bool[B, T]}, **targets)

Every other objective is called exactly as before, ``objective(embeddings, present, **targets)``.
Tokens come with the pooled embeddings from :meth:`scibind.align.model.MultiTowerModel.forward_with_tokens`
(one encoder pass where the encoder has ``forward_with_tokens``): the encoder's tokens, the tower's
projection, L2-normalised, zero (and masked) at padding and for absent records.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from scibind.errors import ConfigError

__all__ = ["TOKEN_KWARGS", "cat_tokens", "embed_with_tokens", "needs_tokens", "objective_token_views"]

TOKEN_KWARGS = ("tokens", "token_masks")


def needs_tokens(objective: Any) -> bool:
    """Whether ``objective`` asks for token embeddings (``needs_tokens = True``)."""
    return bool(getattr(objective, "needs_tokens", False))


def objective_token_views(objective: Any, model: Any) -> list[str]:
    """The views whose tokens ``objective`` gets from ``model`` (``[]`` when it asks for none).

    Raises:
        ConfigError: The objective names a view without a tower or without ``forward_tokens``.
    """
    if not needs_tokens(objective):
        return []
    return model.token_views(getattr(objective, "token_views", None))


def embed_with_tokens(
    model: Any, batch: Any, views: Sequence[str], targets: Mapping[str, Any] | None = None
) -> tuple[dict[str, torch.Tensor], dict[str, dict[str, torch.Tensor]]]:
    """Every view's pooled embeddings and the objective's token keyword arguments for ``views``.

    Each token view's encoder runs once for both (:meth:`scibind.align.model.MultiTowerModel.
    forward_with_tokens`); without token views this is ``model(batch), {}``.

    Returns:
        ``(embeddings, {"tokens": ..., "token_masks": ...})``; the second is ``{}`` when ``views`` is empty.

    Raises:
        ConfigError: A target (label column) is named ``tokens`` or ``token_masks``.
    """
    if not views:
        return model(batch), {}
    clash = sorted(set(TOKEN_KWARGS) & set(targets or {}))
    if clash:
        raise ConfigError(
            f"label columns {clash} clash with the token inputs of a token-level objective; rename them"
        )
    embeddings, tokens, masks = model.forward_with_tokens(batch, views)
    return embeddings, {"tokens": tokens, "token_masks": masks}


def cat_tokens(parts: Sequence[torch.Tensor]) -> torch.Tensor:
    """Concatenate ``[n_i, T_i, ...]`` chunks along rows, padding each ``T_i`` to the largest (zero/false)."""
    width = max(p.shape[1] for p in parts)
    return torch.cat([p if p.shape[1] == width else _pad(p, width) for p in parts])


def _pad(t: torch.Tensor, width: int) -> torch.Tensor:
    out = t.new_zeros(t.shape[0], width, *t.shape[2:])
    out[:, : t.shape[1]] = t
    return out
