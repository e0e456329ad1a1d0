"""What every objective returns."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

__all__ = ["LossOutput"]


@dataclass
class LossOutput:
    """An objective's result.

    Attributes:
        loss: Scalar tensor to minimise (differentiable).
        parts: Named scalars to log (per-pair losses, temperature, bias), detached.
    """

    loss: torch.Tensor
    parts: dict[str, torch.Tensor] = field(default_factory=dict)
