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
        if not self.has_tokens:
            raise ConfigError(
                f"encoder {type(self.encoder).__name__} has no forward_tokens; token-level objectives need "
                "an encoder with token outputs (core/cnn, core/tiny-text, core/minilm have them)"
            )
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze_encoder):
            tokens = self.encoder.forward_tokens(data)
            if tokens.dim() != 3:
                raise ShapeError(
                    f"{type(self.encoder).__name__}.forward_tokens must return [n, T, width], got "
                    f"{tuple(tokens.shape)}"
                )
            if callable(getattr(self.encoder, "token_mask", None)):
                mask = torch.as_tensor(self.encoder.token_mask(data)).to(
                    device=tokens.device, dtype=torch.bool
                )
            else:
                mask = tokens.detach().ne(0).any(-1)
        if tuple(mask.shape) != tuple(tokens.shape[:2]):
            raise ShapeError(
                f"{type(self.encoder).__name__}.token_mask must be bool{list(tokens.shape[:2])} (one flag "
                f"per token of forward_tokens), got {tuple(mask.shape)}"
            )
        return self.projection(tokens), mask


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
        return F.normalize(tokens, dim=-1).masked_fill(~mask[..., None], 0), mask

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
        size = len(batch)
        tokens, masks = {}, {}
        for view in views:
            mb = batch.views.get(view)
            if mb is None or mb.index.numel() == 0:
                like = next(self.towers[view].parameters(), None)
                device = batch.present[view].device if view in batch.present else None
                dtype = like.dtype if like is not None else None
                tokens[view] = torch.zeros(size, 1, self.embed_dim, device=device, dtype=dtype)
                masks[view] = torch.zeros(size, 1, device=device, dtype=torch.bool)
                continue
            t, m = self.encode_tokens(view, mb.data)
            index = mb.index.to(t.device)
            tokens[view] = t.new_zeros(size, *t.shape[1:]).index_copy(0, index, t)
            masks[view] = m.new_zeros(size, m.shape[1]).index_copy(0, index, m)
        return tokens, masks

    def forward(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Embed every view of a batch.

        Args:
            batch: A :class:`scibind.data.types.Batch` (views hold present records only).

        Returns:
            View -> ``[B, embed_dim]``: L2-normalised rows for present records, zero rows for absent ones.
        """
        size = len(batch)
        out = {}
        for view in self.towers:
            mb = batch.views.get(view)
            if mb is None or mb.index.numel() == 0:
                like = next(self.towers[view].parameters(), None)
                device = batch.present[view].device if view in batch.present else None
                dtype = like.dtype if like is not None else None
                out[view] = torch.zeros(size, self.embed_dim, device=device, dtype=dtype)
                continue
            z = self.encode(view, mb.data)
            out[view] = z.new_zeros(size, self.embed_dim).index_copy(0, mb.index.to(z.device), z)
        return out


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
