"""Multi-tower models: one encoder + projection per view, into one L2-normalised space."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from scibind.data.types import Batch
from scibind.errors import ConfigError, ShapeError

__all__ = ["PROJECTIONS", "MultiTowerModel", "Tower", "build_model"]

PROJECTIONS = ("linear", "mlp", "none")
TOWER_KEYS = ("encoder", "encoder_kwargs", "projection", "freeze_encoder", "modality")


def _projection(kind: str, in_dim: int, out_dim: int) -> nn.Module:
    if kind == "linear":
        return nn.Linear(in_dim, out_dim, bias=False)
    if kind == "mlp":
        # open_clip's "mlp" text projection: bottleneck halfway between the two widths.
        hidden = (in_dim + out_dim) // 2
        return nn.Sequential(
            nn.Linear(in_dim, hidden, bias=False), nn.GELU(), nn.Linear(hidden, out_dim, bias=False)
        )
    if kind == "none":
        if in_dim != out_dim:
            raise ConfigError(
                f"projection 'none' needs the encoder's embed_dim ({in_dim}) to equal the model's "
                f"embed_dim ({out_dim}); use projection 'linear' or set embed_dim={in_dim}"
            )
        return nn.Identity()
    raise ConfigError(f"tower option 'projection' must be one of {PROJECTIONS}, got {kind!r}")


class Tower(nn.Module):
    """An encoder followed by a projection into the joint space.

    Args:
        encoder: An ``nn.Module`` with ``modality``, ``embed_dim`` and ``forward(data) -> [n, embed_dim]``.
        embed_dim: Width of the joint space.
        projection: ``"linear"`` (no bias, as open_clip), ``"mlp"`` (Linear-GELU-Linear) or ``"none"``
            (needs ``encoder.embed_dim == embed_dim``).
        freeze_encoder: Keep the encoder's weights fixed (no gradients, eval mode); the projection trains.

    Attributes:
        modality: The encoder's modality.
    """

    def __init__(
        self, encoder: nn.Module, embed_dim: int, projection: str = "linear", freeze_encoder: bool = False
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.embed_dim = embed_dim
        self.modality: str = encoder.modality
        self.projection = _projection(projection, int(encoder.embed_dim), embed_dim)
        self.freeze_encoder = freeze_encoder
        if freeze_encoder:
            encoder.requires_grad_(False)
            encoder.eval()

    def train(self, mode: bool = True) -> Tower:
        """Set training mode; a frozen encoder stays in eval mode."""
        super().train(mode)
        if self.freeze_encoder:
            self.encoder.eval()
        return self

    def forward(self, data: Any) -> torch.Tensor:
        """Encode and project (not normalised): ``[n, embed_dim]``."""
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze_encoder):
            features = self.encoder(data)
        return self.projection(features)

    @property
    def has_tokens(self) -> bool:
        """Whether the encoder has ``forward_tokens`` (token-level objectives can use this tower)."""
        return callable(getattr(self.encoder, "forward_tokens", None))

    def forward_tokens(self, data: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode into tokens and project each (not normalised).

        Returns:
            ``([n, T, embed_dim], bool[n, T])``: the projected tokens and which of them are real. The mask
            is the encoder's ``token_mask(data)`` when it has one; otherwise a token is padding exactly when
            the encoder returned it as an all-zero row.

        Raises:
            ConfigError: The encoder has no ``forward_tokens``.
            ShapeError: The encoder's tokens are not ``[n, T, width]`` or its mask is not ``bool[n, T]``.
        """
        self._require_tokens()
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze_encoder):
            tokens = self.encoder.forward_tokens(data)
            mask = self._token_mask(data, tokens)
        return self.projection(tokens), mask

    def forward_with_tokens(self, data: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The pooled embedding and the tokens of the same records, projected (not normalised).

        An encoder with ``forward_with_tokens(data) -> (pooled, tokens)`` computes both in one pass (and,
        in training mode, under one dropout draw); for any other encoder ``forward`` and ``forward_tokens``
        run one after the other.

        Returns:
            ``([n, embed_dim], [n, T, embed_dim], bool[n, T])`` as :meth:`forward` and :meth:`forward_tokens`.

        Raises:
            ConfigError: The encoder has no ``forward_tokens``.
            ShapeError: As :meth:`forward_tokens`.
        """
        self._require_tokens()
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze_encoder):
            both = getattr(self.encoder, "forward_with_tokens", None)
            if callable(both):
                pooled, tokens = both(data)
            else:
                pooled, tokens = self.encoder(data), self.encoder.forward_tokens(data)
            mask = self._token_mask(data, tokens)
        return self.projection(pooled), self.projection(tokens), mask

    def _require_tokens(self) -> None:
        if not self.has_tokens:
            raise ConfigError(
                f"encoder {type(self.encoder).__name__} has no forward_tokens; token-level objectives need "
                "an encoder with token outputs (core/cnn, core/tiny-text, core/minilm have them)"
            )

    def _token_mask(self, data: Any, tokens: torch.Tensor) -> torch.Tensor:
        """The encoder's ``token_mask(data)``, else its non-zero token rows; shapes checked."""
        name = type(self.encoder).__name__
        if tokens.dim() != 3:
            raise ShapeError(f"{name}.forward_tokens must return [n, T, width], got {tuple(tokens.shape)}")
        if callable(getattr(self.encoder, "token_mask", None)):
            mask = torch.as_tensor(self.encoder.token_mask(data)).to(device=tokens.device, dtype=torch.bool)
        else:
            mask = tokens.detach().ne(0).any(-1)
        if tuple(mask.shape) != tuple(tokens.shape[:2]):
            raise ShapeError(
                f"{name}.token_mask must be bool{list(tokens.shape[:2])} (one flag per token of "
                f"forward_tokens), got {tuple(mask.shape)}"
            )
        return mask


class MultiTowerModel(nn.Module):
    """One :class:`Tower` per view; every view lands in the same L2-normalised ``embed_dim`` space.

    Args:
        towers: View name -> tower.
        embed_dim: Width of the joint space (every tower's output width).
    """

    def __init__(self, towers: Mapping[str, Tower], embed_dim: int) -> None:
        super().__init__()
        if not towers:
            raise ConfigError("a model needs at least one tower; add entries under 'towers' in the recipe")
        for view, tower in towers.items():
            if tower.embed_dim != embed_dim:
                raise ConfigError(f"tower {view!r} projects to {tower.embed_dim}, the model to {embed_dim}")
        self.towers = nn.ModuleDict(dict(towers))
        self.embed_dim = embed_dim

    @property
    def views(self) -> list[str]:
        """The view names, in tower order."""
        return list(self.towers)

    def encode(self, view: str, data: Any) -> torch.Tensor:
        """Embed ``n`` values of one view: ``[n, embed_dim]``, rows L2-normalised.

        Raises:
            ConfigError: The model has no tower for ``view``.
        """
        if view not in self.towers:
            raise ConfigError(f"the model has no tower for view {view!r}; its views are {self.views}")
        return F.normalize(self.towers[view](data), dim=-1)

    def token_views(self, requested: Sequence[str] | None = None) -> list[str]:
        """The views whose token embeddings a token-level objective gets.

        Args:
            requested: View names; ``None`` = every view whose encoder has ``forward_tokens``.

        Raises:
            ConfigError: A requested view has no tower or its encoder has no ``forward_tokens``.
        """
        if requested is None:
            return [view for view, tower in self.towers.items() if tower.has_tokens]
        if isinstance(requested, str):
            raise ConfigError(f"objective option 'token_views' must be a list of views, got {requested!r}")
        out = []
        for view in requested:
            if view not in self.towers:
                raise ConfigError(
                    f"objective option 'token_views' names {view!r}, which has no tower; views: {self.views}"
                )
            if not self.towers[view].has_tokens:
                encoder = type(self.towers[view].encoder).__name__
                raise ConfigError(
                    f"objective option 'token_views' names {view!r}, but its encoder {encoder} has no "
                    "forward_tokens; pick an encoder with token outputs or leave the view out"
                )
            if view not in out:
                out.append(view)
        return out

    def encode_tokens(self, view: str, data: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """Token embeddings of ``n`` values of one view in the joint space.

        Returns:
            ``([n, T, embed_dim], bool[n, T])``: L2-normalised tokens, exactly zero where the mask is false
            (padding), and the mask.

        Raises:
            ConfigError: The model has no tower for ``view`` or its encoder has no ``forward_tokens``.
        """
        if view not in self.towers:
            raise ConfigError(f"the model has no tower for view {view!r}; its views are {self.views}")
        tokens, mask = self.towers[view].forward_tokens(data)
        return _unit_tokens(tokens, mask), mask

    def forward_tokens(
        self, batch: Batch, views: Sequence[str]
    ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """Token embeddings of ``views`` for a whole batch, scattered to the batch's rows.

        Args:
            batch: A :class:`scibind.data.types.Batch`.
            views: Views whose encoders have ``forward_tokens`` (:meth:`token_views`).

        Returns:
            ``(tokens, token_masks)``: view -> ``[B, T, embed_dim]`` (as :meth:`encode_tokens` for present
            records, zero rows for absent ones) and view -> ``bool[B, T]`` (false for padding and for every
            token of an absent record). A view absent from the whole batch gets ``T = 1``.
        """
        tokens, masks = {}, {}
        for view in views:
            mb = batch.views.get(view)
            if mb is None or mb.index.numel() == 0:
                tokens[view], masks[view] = self._no_tokens(batch, view)
                continue
            t, m = self.encode_tokens(view, mb.data)
            tokens[view], masks[view] = _scatter(t, mb.index, len(batch)), _scatter(m, mb.index, len(batch))
        return tokens, masks

    def forward_with_tokens(
        self, batch: Batch, token_views: Sequence[str]
    ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """Every view's pooled embeddings and the tokens of ``token_views``, each encoder run once.

        Views outside ``token_views`` are embedded by calling the model (so forward hooks, such as the
        frozen-feature cache's, see the batch); each token view's tower gives its pooled embedding and its
        tokens together (:meth:`Tower.forward_with_tokens`).

        Returns:
            ``(embeddings, tokens, token_masks)`` as :meth:`forward` and :meth:`forward_tokens`.
        """
        others = [v for v in self.towers if v not in token_views]
        pooled = self(batch, views=others) if others else {}
        tokens, masks = {}, {}
        for view in token_views:
            mb = batch.views.get(view)
            if mb is None or mb.index.numel() == 0:
                pooled[view] = self._absent(batch, view, self.embed_dim)
                tokens[view], masks[view] = self._no_tokens(batch, view)
                continue
            z, t, m = self.towers[view].forward_with_tokens(mb.data)
            size = len(batch)
            pooled[view] = _scatter(F.normalize(z, dim=-1), mb.index, size)
            tokens[view], masks[view] = (
                _scatter(_unit_tokens(t, m), mb.index, size),
                _scatter(m, mb.index, size),
            )
        return {v: pooled[v] for v in self.towers}, tokens, masks

    def forward(self, batch: Batch, views: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
        """Embed every view (or ``views``) of a batch.

        Args:
            batch: A :class:`scibind.data.types.Batch` (views hold present records only).
            views: The views to embed; ``None``: every tower's.

        Returns:
            View -> ``[B, embed_dim]``: L2-normalised rows for present records, zero rows for absent ones.
        """
        out = {}
        for view in self.towers if views is None else views:
            mb = batch.views.get(view)
            if mb is None or mb.index.numel() == 0:
                out[view] = self._absent(batch, view, self.embed_dim)
                continue
            out[view] = _scatter(self.encode(view, mb.data), mb.index, len(batch))
        return out

    def _absent(self, batch: Batch, view: str, *shape: int, dtype: torch.dtype | None = None) -> torch.Tensor:
        """Zeros ``[B, *shape]`` for a view absent from the whole batch (the tower's dtype by default)."""
        like = next(self.towers[view].parameters(), None)
        device = batch.present[view].device if view in batch.present else None
        if dtype is None and like is not None:
            dtype = like.dtype
        return torch.zeros(len(batch), *shape, device=device, dtype=dtype)

    def _no_tokens(self, batch: Batch, view: str) -> tuple[torch.Tensor, torch.Tensor]:
        return self._absent(batch, view, 1, self.embed_dim), self._absent(batch, view, 1, dtype=torch.bool)


def _unit_tokens(tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Tokens L2-normalised, exactly zero where ``mask`` is false."""
    return F.normalize(tokens, dim=-1).masked_fill(~mask[..., None], 0)


def _scatter(rows: torch.Tensor, index: torch.Tensor, size: int) -> torch.Tensor:
    """``rows`` (of the present records) placed at ``index`` of ``size`` zero rows."""
    return rows.new_zeros(size, *rows.shape[1:]).index_copy(0, index.to(rows.device), rows)


def build_model(towers_cfg: Mapping[str, Mapping[str, Any]], embed_dim: int) -> MultiTowerModel:
    """Build a :class:`MultiTowerModel` from a recipe's ``towers`` section.

    Args:
        towers_cfg: View -> ``{"encoder": "core/mlp", "encoder_kwargs": {...}, "projection": "linear",
            "freeze_encoder": False, "modality": "vector"}``. ``modality`` is optional: when given, the
            encoder must be of that modality; when omitted and the view is named like a registered modality
            (``text``, ``image``), the encoder must be of that one; otherwise any encoder fits.
        embed_dim: Width of the joint space.

    Raises:
        ConfigError: Unknown keys, a missing encoder, or an encoder of another modality than the tower's.
    """
    from scibind.api import create_encoder, list_modalities

    modalities = {m.name for m in list_modalities()}
    towers = {}
    for view, cfg in towers_cfg.items():
        unknown = sorted(set(cfg) - set(TOWER_KEYS))
        if unknown:
            raise ConfigError(f"towers.{view}: unknown keys {unknown}; allowed: {list(TOWER_KEYS)}")
        if not cfg.get("encoder"):
            raise ConfigError(
                f"towers.{view}.encoder is missing; name a registered encoder (see: scibind list encoders)"
            )
        encoder = create_encoder(cfg["encoder"], **dict(cfg.get("encoder_kwargs") or {}))
        wanted = cfg.get("modality") or (view if view in modalities else None)
        if wanted is not None and encoder.modality != wanted:
            raise ConfigError(
                f"towers.{view}: encoder {cfg['encoder']!r} encodes modality {encoder.modality!r} but the "
                f"tower's modality is {wanted!r}; pick a {wanted!r} encoder (scibind list encoders) or set "
                f"towers.{view}.modality"
            )
        towers[view] = Tower(
            encoder,
            embed_dim,
            projection=cfg.get("projection", "linear"),
            freeze_encoder=bool(cfg.get("freeze_encoder", False)),
        )
    return MultiTowerModel(towers, embed_dim)
