"""Geometry of the joint space: modality gap, alignment and uniformity.

- **gap** (Liang et al. 2022, "Mind the Gap"): Euclidean distance between the centroids of two views'
  embeddings over the records where both are present.
- **alignment** (Wang & Isola 2020): mean squared distance ``E ||x - y||^2`` of positive pairs (the two
  views of one record); 0 = perfectly aligned, 4 = antipodal.
- **uniformity** (Wang & Isola 2020): ``log E exp(-t ||x - x'||^2)`` over distinct pairs of one view's
  embeddings, ``t = 2``; lower is more uniform (the minimum on the sphere approaches ``-t * 2 = -4``).
  Computed on at most ``max_samples`` seeded random records, in chunks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import combinations

import torch

from scibind.errors import ConfigError
from scibind.evaluate.context import EvalContext

__all__ = ["GeometryTask", "alignment", "modality_gap", "uniformity"]

TASK = "core/geometry"


def modality_gap(a: torch.Tensor, b: torch.Tensor) -> float:
    """Distance between the centroids of ``a`` and ``b`` (``float[n, D]`` each)."""
    return float((a.double().mean(0) - b.double().mean(0)).norm())


def alignment(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean squared distance between row ``i`` of ``a`` and row ``i`` of ``b``."""
    return float((a.double() - b.double()).pow(2).sum(1).mean())


def uniformity(x: torch.Tensor, *, t: float = 2.0, chunk_size: int = 1024) -> float:
    """``log`` of the mean of ``exp(-t ||x_i - x_j||^2)`` over pairs ``i < j``.

    Args:
        x: ``float[n, D]`` embeddings, ``n >= 2``.
        t: Temperature.
        chunk_size: Rows compared at once.
    """
    x = x.double()
    n = x.shape[0]
    sq = x.pow(2).sum(1)
    # log-sum-exp over the strict upper triangle, chunk by chunk, to stay stable for large t.
    parts = []
    for start in range(0, n, chunk_size):
        stop = min(start + chunk_size, n)
        d2 = (sq[start:stop, None] + sq[None, :] - 2 * x[start:stop] @ x.T).clamp_min(0)
        upper = torch.arange(n)[None, :] > torch.arange(start, stop)[:, None]
        parts.append(torch.logsumexp((-t * d2)[upper], 0))
    return float(torch.logsumexp(torch.stack(parts), 0) - math.log(n * (n - 1) / 2))


class GeometryTask:
    """Modality gap and alignment per pair of views, uniformity per view.

    Keys: ``geometry/<a>,<b>/gap``, ``geometry/<a>,<b>/alignment`` (over records with both views) and
    ``geometry/<view>/uniformity``.

    Args:
        pairs: ``[[a, b], ...]`` view pairs; default every pair (in view order).
        t: Uniformity temperature.
        max_samples: Records (seeded random subset) used for uniformity, which is quadratic.
        seed: Subset seed.
    """

    def __init__(
        self,
        pairs: Sequence[Sequence[str]] | None = None,
        t: float = 2.0,
        max_samples: int = 4096,
        seed: int = 0,
    ) -> None:
        if pairs is not None and any(len(p) != 2 for p in pairs):
            raise ConfigError(f"{TASK}: pairs must be a list of [view_a, view_b], got {pairs!r}")
        if max_samples < 2:
            raise ConfigError(f"{TASK}: max_samples must be >= 2, got {max_samples}")
        self.pairs = None if pairs is None else [(str(a), str(b)) for a, b in pairs]
        self.t = float(t)
        self.max_samples = int(max_samples)
        self.seed = int(seed)

    def __call__(self, ctx: EvalContext) -> dict[str, float]:
        """Compute the metrics."""
        pairs = list(combinations(ctx.views, 2)) if self.pairs is None else self.pairs
        out: dict[str, float] = {}
        for a, b in pairs:
            both = ctx.require_view(a, TASK) & ctx.require_view(b, TASK)
            if not bool(both.any()):
                continue
            xa, xb = ctx.embeddings[a][both], ctx.embeddings[b][both]
            out[f"geometry/{a},{b}/gap"] = modality_gap(xa, xb)
            out[f"geometry/{a},{b}/alignment"] = alignment(xa, xb)
        generator = torch.Generator().manual_seed(self.seed)
        for view in ctx.views:
            x = ctx.embeddings[view][ctx.present[view].bool()]
            if x.shape[0] < 2:
                continue
            if x.shape[0] > self.max_samples:
                x = x[torch.randperm(x.shape[0], generator=generator)[: self.max_samples]]
            out[f"geometry/{view}/uniformity"] = uniformity(x, t=self.t)
        return out
