"""Alignment: multi-tower models, projections and contrastive objectives."""

from scibind.align.output import LossOutput

__all__ = ["LossOutput"]
