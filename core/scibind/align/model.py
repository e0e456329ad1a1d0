"""Multi-tower models: one encoder + projection per view, into one L2-normalised space."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from scibind.data.types import Batch
from scibind.errors import ConfigError

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
