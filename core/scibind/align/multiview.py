"""What the N-modality objectives share: views, masks, targets, a learnable temperature and gathering.

The objectives of issue 4 (:mod:`scibind.align.symile`, :mod:`scibind.align.gram`,
:mod:`scibind.align.soft_clip`, :mod:`scibind.align.cwcl`, :mod:`scibind.align.prototype`,
:mod:`scibind.align.filip`, :mod:`scibind.align.uniformity`) subclass :class:`MultiViewObjective`. It

1. picks the views the objective uses (``views=None``: every view given, sorted);
2. L2-normalises each view's embeddings (in float32 at least, also under autocast);
3. builds ``bool[B]`` presence masks (a view without a mask is present in every row);
4. under ``torch.distributed`` (and ``gather=True``) gathers embeddings *with* gradients
   (:func:`scibind.align.distributed.gather_with_grad`), masks and the targets it is asked for, so the loss
   is the single-process loss of the global batch (the derivation is in :mod:`scibind.align.distributed`);
5. owns the temperature: ``temperature`` is the initial τ, stored as ``logit_scale = log(1/τ)`` (trained
   when ``learn_temperature``), and ``scale()`` is ``1/τ`` clamped at ``max_logit_scale`` — the same
   keywords and parameterisation as ``core/clip`` and ``core/siglip``.

It also has :meth:`MultiViewObjective.zero_loss` (a 0 connected to every parameter, so a step where nothing
can be compared still reaches every parameter). Pairwise combinations pick their pairs with
:func:`scibind.align.pairs.view_pairs` (all pairs, explicit pairs or ImageBind-style pairs to one anchor).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from scibind.align.distributed import gather_no_grad, gather_sizes, gather_with_grad, is_distributed
from scibind.align.temperature import TemperatureModule
from scibind.errors import ConfigError, ShapeError

__all__ = ["MultiViewObjective", "Prepared"]


@dataclass
class Prepared:
    """One batch, ready for a loss: normalised (and gathered) embeddings, masks and targets.

    Attributes:
        z: View -> ``[N, D]`` (or ``[N, T, D]`` for token embeddings) L2-normalised rows; ``N`` is the global
            batch when gathered.
        masks: View -> ``bool[N]`` presence.
        targets: Name -> gathered target tensor (only the names asked for and given).
    """

    z: dict[str, torch.Tensor]
    masks: dict[str, torch.Tensor]
    targets: dict[str, torch.Tensor]

    @property
    def size(self) -> int:
        """``N``, the number of rows."""
        return next(iter(self.masks.values())).shape[0]


class MultiViewObjective(TemperatureModule):
    """Base class of the N-modality objectives (see the module docstring).

    Args:
        views: The views to use; ``None`` = every view given to ``forward``.
        temperature: Initial τ (``logit_scale = log(1/τ)``).
        learn_temperature: Train ``logit_scale``; otherwise it is a fixed buffer.
        max_logit_scale: ``1/τ`` never exceeds this (no gradient above the clamp).
        gather: Gather across ranks under ``torch.distributed``.
        min_views: The fewest views the objective accepts.
    """

    def __init__(
        self,
        views: Sequence[str] | None = None,
        *,
        temperature: float = 0.07,
        learn_temperature: bool = True,
        max_logit_scale: float = 100.0,
        gather: bool = True,
        min_views: int = 2,
    ) -> None:
        super().__init__(temperature, learn_temperature, max_logit_scale)
        if isinstance(views, str):
            raise ConfigError(f"objective option 'views' must be a list of view names, got {views!r}")
        self.views = None if views is None else [str(v) for v in views]
        self.gather = gather
        self.min_views = min_views

    # -- temperature ----------------------------------------------------------------------------------------

    def temperature_parts(self) -> dict[str, torch.Tensor]:
        """``logit_scale`` (``1/τ``) and ``temperature`` (τ), detached, for logging."""
        scale = self.scale().detach()
        return {"logit_scale": scale, "temperature": 1.0 / scale}

    # -- inputs ---------------------------------------------------------------------------------------------

    def select_views(self, embeddings: Mapping[str, torch.Tensor]) -> list[str]:
        """The views this objective uses, checked against the embeddings given."""
        given = list(embeddings)
        views = sorted(given) if self.views is None else list(self.views)
        missing = [v for v in views if v not in embeddings]
        if missing:
            raise ConfigError(
                f"objective option 'views' names {missing} but embeddings exist only for {sorted(given)}"
            )
        if len(set(views)) != len(views):
            raise ConfigError(f"objective option 'views' repeats a view: {views}")
        if len(views) < self.min_views:
            raise ConfigError(
                f"{type(self).__name__} needs embeddings of at least {self.min_views} views, got {views}; "
                "add towers to the recipe"
            )
        return views

    def prepare(
        self,
        embeddings: Mapping[str, torch.Tensor],
        present: Mapping[str, torch.Tensor] | None,
        views: Sequence[str],
        targets: Mapping[str, torch.Tensor | None] | None = None,
        *,
        tokens: bool = False,
    ) -> Prepared:
        """Check shapes, normalise, build masks and gather everything across ranks.

        Args:
            embeddings: View -> ``[B, D]`` (or ``[B, T, D]`` when ``tokens``).
            present: View -> ``bool[B]``.
            views: The views to prepare.
            targets: Name -> ``[B, ...]`` tensors to gather beside them (``None`` values are skipped).
            tokens: Accept ``[B, T, D]`` token embeddings (each token is normalised; the token count may
                differ between views).
        """
        ranks = (2, 3) if tokens else (2,)
        bad = {v: tuple(embeddings[v].shape) for v in views if embeddings[v].dim() not in ranks}
        sizes = {embeddings[v].shape[0] for v in views}
        widths = {embeddings[v].shape[-1] for v in views}
        if bad or len(sizes) != 1 or len(widths) != 1:
            shapes = {v: tuple(embeddings[v].shape) for v in views}
            want = "[B, D] or [B, T, D]" if tokens else "[B, D]"
            raise ShapeError(
                f"objective embeddings must be {want} with the same B and D for every view, got {shapes}; "
                "pass zero rows (and present=False) for absent records; give every tower the same embed_dim"
            )
        size = sizes.pop()
        first = embeddings[views[0]]
        z = {}
        for v in views:
            e = embeddings[v]
            z[v] = F.normalize(e.to(torch.promote_types(e.dtype, torch.float32)), dim=-1)
        masks = {v: _mask(present, v, size, first.device) for v in views}
        extra = {}
        for name, value in (targets or {}).items():
            if value is None:
                continue
            t = torch.as_tensor(value, device=first.device)
            if t.dim() == 0 or t.shape[0] != size:
                raise ShapeError(
                    f"target {name!r} must have {size} rows (one per record), got {tuple(t.shape)}"
                )
            extra[name] = t
        if self.gather and is_distributed():
            counts = gather_sizes(size, first.device)
            z = {
                v: _gather_padded(t, counts) if t.dim() == 3 else gather_with_grad(t, counts)
                for v, t in z.items()
            }
            masks = {v: gather_no_grad(m, counts) for v, m in masks.items()}
            extra = {k: gather_no_grad(t, counts) for k, t in extra.items()}
        return Prepared(z, masks, extra)

    def zero_loss(self, *tensors: torch.Tensor) -> torch.Tensor:
        """0, connected to ``tensors`` and to every parameter (sums of empty slices: exact zero gradients)."""
        zero = torch.zeros((), device=self.logit_scale.device, dtype=self.logit_scale.dtype)
        for t in tensors:
            zero = zero + t.reshape(-1)[:0].sum()
        for p in self.parameters():
            zero = zero + p.reshape(-1)[:0].sum()
        return zero


def _gather_padded(t: torch.Tensor, counts: list[int]) -> torch.Tensor:
    """Gather ``[n, T, D]`` token embeddings whose ``T`` may differ between ranks (zero-padded tokens)."""
    import torch.distributed as dist

    tokens = torch.tensor([t.shape[1]], device=t.device)
    dist.all_reduce(tokens, op=dist.ReduceOp.MAX)
    t = F.pad(t, (0, 0, 0, int(tokens) - t.shape[1]))
    return gather_with_grad(t, counts)


def _mask(
    present: Mapping[str, torch.Tensor] | None, view: str, size: int, device: torch.device
) -> torch.Tensor:
    if present is None or present.get(view) is None:
        return torch.ones(size, dtype=torch.bool, device=device)
    mask = torch.as_tensor(present[view], device=device)
    if mask.shape != (size,):
        raise ShapeError(f"present[{view!r}] must be a bool[{size}] mask, got shape {tuple(mask.shape)}")
    return mask.to(torch.bool)
