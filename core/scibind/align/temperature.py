"""The learnable temperature every contrastive objective shares."""

from __future__ import annotations

import math

import torch
from torch import nn

from scibind.errors import ConfigError

__all__ = ["TemperatureModule"]


class TemperatureModule(nn.Module):
    """An ``nn.Module`` holding ``logit_scale = log(1/τ)`` (as open_clip does) and its clamped ``scale()``.

    Args:
        temperature: Initial τ; logits are cosine similarities divided by τ.
        learn_temperature: Whether ``logit_scale`` is a trained parameter (else a fixed buffer).
        max_logit_scale: ``1/τ`` used in a loss never exceeds this (no gradient above the clamp).

    Raises:
        ConfigError: ``temperature`` or ``max_logit_scale`` is not positive.
    """

    def __init__(self, temperature: float, learn_temperature: bool, max_logit_scale: float) -> None:
        super().__init__()
        if not temperature > 0:
            raise ConfigError(f"objective option 'temperature' must be > 0, got {temperature}")
        if not max_logit_scale > 0:
            raise ConfigError(f"objective option 'max_logit_scale' must be > 0, got {max_logit_scale}")
        self.max_logit_scale = float(max_logit_scale)
        init = torch.tensor(math.log(1.0 / temperature), dtype=torch.float32)
        if learn_temperature:
            self.logit_scale = nn.Parameter(init)
        else:
            self.register_buffer("logit_scale", init)

    def scale(self) -> torch.Tensor:
        """The multiplier ``1/τ`` of cosine similarities, clamped at ``max_logit_scale``."""
        return self.logit_scale.clamp(max=math.log(self.max_logit_scale)).exp()
