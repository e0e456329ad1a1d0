"""Learning-rate schedule: linear warmup, then cosine decay to ``min_lr_ratio`` (or constant).

The rate is a pure function of the step, so a resumed run needs no scheduler state: it recomputes the rate
of the step it continues from.
"""

from __future__ import annotations

import math

__all__ = ["lr_at"]


def lr_at(
    step: int,
    *,
    base_lr: float,
    max_steps: int,
    warmup_steps: int = 0,
    schedule: str = "cosine",
    min_lr_ratio: float = 0.0,
) -> float:
    """Learning rate of optimizer step ``step`` (0-based).

    Args:
        step: Index of the optimizer step about to be taken.
        base_lr: Peak learning rate, reached at the end of warmup.
        max_steps: Total optimizer steps of the run.
        warmup_steps: Steps of linear warmup; step ``i < warmup_steps`` uses
            ``base_lr * (i + 1) / warmup_steps``.
        schedule: ``"cosine"`` (decay to ``base_lr * min_lr_ratio`` at ``max_steps``) or ``"constant"``.
        min_lr_ratio: Final rate of the cosine as a fraction of ``base_lr``.

    Returns:
        The learning rate.
    """
    if warmup_steps > 0 and step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    if schedule == "constant":
        return base_lr
    decay_steps = max(1, max_steps - warmup_steps)
    progress = min(1.0, max(0.0, (step - warmup_steps) / decay_steps))
    cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
    return base_lr * (min_lr_ratio + (1.0 - min_lr_ratio) * cosine)
