"""A deterministic, resumable, rank-aware batch sampler.

Step ``t`` is global batch ``t`` of an endless sequence of epochs; epoch ``e`` is
``torch.randperm(n, generator=manual_seed(seed + e))`` cut into global batches. Rank ``r`` of ``w`` takes the
contiguous slice ``[r * b, (r + 1) * b)`` of each global batch (``b = global_batch_size / w``), so ``w``
ranks together see exactly the batches one process sees, and ``start_step`` resumes the exact order.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from scibind.errors import ConfigError

__all__ = ["GlobalBatchSampler"]


class GlobalBatchSampler:
    """Endless per-rank index batches, identical across world sizes and resumes.

    Use it as ``DataLoader(dataset, batch_sampler=sampler, collate_fn=dataset.collate)`` and stop after the
    number of steps you train for.

    Args:
        n: Number of records.
        global_batch_size: Records per step over all ranks.
        seed: Seed of the per-epoch permutations (epoch ``e`` uses ``seed + e``).
        rank: This process's rank.
        world_size: Number of processes.
        start_step: First step to yield (the step a resumed run continues from).
        drop_last: Drop each epoch's incomplete last batch; otherwise complete it with the first records of
            the same epoch's permutation (every step then has a full batch).

    Raises:
        ConfigError: Sizes are not positive, ``global_batch_size`` is not divisible by ``world_size``, the
            rank is out of range, or ``drop_last`` leaves no batch (``n < global_batch_size``).
    """

    def __init__(
        self,
        n: int,
        global_batch_size: int,
        *,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        start_step: int = 0,
        drop_last: bool = True,
    ) -> None:
        if n <= 0 or global_batch_size <= 0 or world_size <= 0:
            raise ConfigError(
                f"sampler needs n, global_batch_size and world_size > 0, got n={n}, "
                f"global_batch_size={global_batch_size}, world_size={world_size}"
            )
        if global_batch_size % world_size:
            raise ConfigError(
                f"global batch size {global_batch_size} is not divisible by world size {world_size}; "
                "choose a "
                f"batch size that is a multiple of {world_size}"
            )
        if not 0 <= rank < world_size:
            raise ConfigError(f"rank {rank} is out of range for world size {world_size}")
        if start_step < 0:
            raise ConfigError(f"start_step must be >= 0, got {start_step}")
        if drop_last and n < global_batch_size:
            raise ConfigError(
                f"only {n} records for a global batch of {global_batch_size} with drop_last=True, "
                "so no batch "
                "would ever be drawn; lower the batch size or set drop_last=False"
            )
        self.n = n
        self.global_batch_size = global_batch_size
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.start_step = start_step
        self.drop_last = drop_last
        self.local_batch_size = global_batch_size // world_size
        self._cached: tuple[int, list[int]] | None = None

    @property
    def steps_per_epoch(self) -> int:
        """Global batches per epoch."""
        if self.drop_last:
            return self.n // self.global_batch_size
        return -(-self.n // self.global_batch_size)

    def epoch_of(self, step: int) -> int:
        """The epoch that step ``step`` belongs to."""
        return step // self.steps_per_epoch

    def _permutation(self, epoch: int) -> list[int]:
        if self._cached is None or self._cached[0] != epoch:
            generator = torch.Generator().manual_seed(self.seed + epoch)
            self._cached = (epoch, torch.randperm(self.n, generator=generator).tolist())
        return self._cached[1]

    def global_batch(self, step: int) -> list[int]:
        """The record indices of global batch ``step`` (all ranks)."""
        perm = self._permutation(self.epoch_of(step))
        start = (step % self.steps_per_epoch) * self.global_batch_size
        batch = perm[start : start + self.global_batch_size]
        while len(batch) < self.global_batch_size:  # only when drop_last is False
            batch += perm[: self.global_batch_size - len(batch)]
        return batch

    def batch(self, step: int) -> list[int]:
        """This rank's slice of global batch ``step``."""
        lo = self.rank * self.local_batch_size
        return self.global_batch(step)[lo : lo + self.local_batch_size]

    def __iter__(self) -> Iterator[list[int]]:
        step = self.start_step
        while True:
            yield self.batch(step)
            step += 1
