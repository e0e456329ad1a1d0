"""What every pairwise contrastive objective shares: pairs, masks, positives, temperature, gathering.

A pairwise objective (:class:`scibind.align.clip.ClipObjective`,
:class:`scibind.align.siglip.SigLipObjective`) subclasses :class:`PairwiseObjective` and implements
only :meth:`PairwiseObjective.pair_loss` over the rows where both views of one pair are present.
Everything else happens here, once:

1. each view's embeddings are L2-normalised (in float32 at least, also under autocast);
2. under ``torch.distributed`` (and ``gather=True``) embeddings, masks and targets are gathered from every
   rank (:mod:`scibind.align.distributed`), so the loss is the single-process loss over the global batch;
3. for each pair only rows where both views are present take part; a pair with fewer than two such rows
   contributes 0 (still differentiable, so DDP sees every parameter used);
4. rows sharing a non-negative ``group`` code are all positives of each other (multi-positive targets);
5. the loss is the mean over the configured pairs.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F

from scibind.align.distributed import gather_no_grad, gather_sizes, gather_with_grad, is_distributed
from scibind.align.output import LossOutput
from scibind.align.temperature import TemperatureModule
from scibind.align.tiled import auto_block_size, l2_normalize, no_autocast
from scibind.errors import ConfigError, ShapeError

__all__ = [
    "PairwiseObjective",
    "anchor_pairs",
    "as_pair",
    "pair_key",
    "positive_mask",
    "resolve_pairs",
    "shares_groups",
    "view_pairs",
]


def pair_key(a: str, b: str) -> str:
    """The ``LossOutput.parts`` key of one pair's loss, e.g. ``"text<->vector"``."""
    return f"{a}<->{b}"


def as_pair(pair: Sequence[str]) -> tuple[str, str]:
    """One configured pair as a tuple of two different view names.

    Raises:
        ConfigError: ``pair`` is a string or not two different names.
    """
    if isinstance(pair, str) or len(pair) != 2 or pair[0] == pair[1]:
        raise ConfigError(
            f"objective option 'pairs': each entry must be two different view names, got {pair!r}"
        )
    return str(pair[0]), str(pair[1])


def resolve_pairs(pairs: Sequence[Sequence[str]] | None, views: Sequence[str]) -> list[tuple[str, str]]:
    """The pairs of views an objective compares.

    Args:
        pairs: Configured pairs ``[(a, b), ...]``; ``None`` means every pair of ``views``.
        views: The views embeddings were given for.

    Returns:
        The pairs as tuples; with ``pairs=None`` every unordered pair of the sorted views.

    Raises:
        ConfigError: A pair names a view that has no embeddings, repeats one view, or fewer than two
            views were given.
    """
    available = sorted(views)
    if pairs is None:
        if len(available) < 2:
            raise ConfigError(
                f"a pairwise objective needs embeddings of at least two views, got {available}; "
                "add a second tower to the recipe"
            )
        return list(itertools.combinations(available, 2))
    out = []
    for pair in map(as_pair, pairs):
        missing = [v for v in pair if v not in views]
        if missing:
            raise ConfigError(
                f"objective option 'pairs': {pair!r} names {missing} but embeddings exist only for "
                f"{available}; fix the pair or add a tower for it"
            )
        out.append(pair)
    return out


def anchor_pairs(anchor: str, views: Sequence[str]) -> list[tuple[str, str]]:
    """ImageBind-style pairs: ``(anchor, v)`` for every other view ``v`` (sorted).

    Raises:
        ConfigError: ``anchor`` has no embeddings, or it is the only view.
    """
    if anchor not in views:
        raise ConfigError(
            f"objective option 'anchor': {anchor!r} has no embeddings; the views are {sorted(views)}"
        )
    others = sorted(v for v in views if v != anchor)
    if not others:
        raise ConfigError(f"objective option 'anchor': {anchor!r} is the only view; add a second tower")
    return [(anchor, v) for v in others]


def view_pairs(
    pairs: Sequence[Sequence[str]] | None, anchor: str | None, views: Sequence[str]
) -> list[tuple[str, str]]:
    """The pairs a pairwise combination compares.

    Args:
        pairs: Explicit pairs (``None``: see ``anchor``).
        anchor: With ``pairs=None``, compare every view with this one only (ImageBind); ``None`` = every
            unordered pair of views (all-pairs).
        views: The views embeddings were given for.

    Raises:
        ConfigError: Both ``pairs`` and ``anchor`` are set, or a name has no embeddings.
    """
    if pairs is not None and anchor is not None:
        raise ConfigError("objective options 'pairs' and 'anchor' exclude each other; set one of them")
    if anchor is not None:
        return anchor_pairs(anchor, views)
    return resolve_pairs(pairs, views)


def shares_groups(groups: torch.Tensor) -> bool:
    """Whether two rows share a non-negative group code (so some row has several positives)."""
    coded = groups[groups >= 0]
    return bool(coded.unique().numel() < coded.numel())


def positive_mask(groups: torch.Tensor | None, n: int | None = None) -> torch.Tensor:
    """Which rows are positives of each other, as a dense matrix.

    Args:
        groups: ``int[n]`` group codes (``-1``, any negative value, means no group), or ``None``.
        n: The number of rows when ``groups`` is ``None``.

    Returns:
        ``bool[n, n]``: the diagonal plus every pair of rows sharing a non-negative code.
    """
    if groups is None:
        if n is None:
            raise ValueError("positive_mask needs groups or n")
        return torch.eye(n, dtype=torch.bool)
    same = (groups[:, None] == groups[None, :]) & (groups >= 0)[:, None]
    return same | torch.eye(groups.shape[0], dtype=torch.bool, device=groups.device)


class PairwiseObjective(TemperatureModule):
    """Base class of pairwise contrastive objectives with a learnable, clamped temperature.

    Subclasses implement :meth:`pair_loss`. ``forward(embeddings, present=None, **targets)`` returns a
    :class:`LossOutput` whose ``parts`` hold each pair's loss (key ``"a<->b"``), ``logit_scale`` and
    ``temperature`` (plus whatever :meth:`extra_parts` adds).

    Args:
        pairs: Pairs of views to compare; ``None`` = every pair of the views given (sorted), or with
            ``anchor`` every view paired with that one.
        anchor: ImageBind-style: compare every other view with this one only (excludes ``pairs``).
        temperature: Initial temperature τ; logits are cosine similarity / τ. Stored as
            ``logit_scale = log(1/τ)`` (as open_clip does).
        learn_temperature: Whether ``logit_scale`` is a trained parameter (else a fixed buffer).
        max_logit_scale: The scale ``1/τ`` used in the loss never exceeds this (the clamp has zero
            gradient above it, so the parameter stops growing).
        positive_target: Name of the target (keyword of ``forward``) whose non-negative codes mark
            positives: rows sharing a code are all positives. ``None`` disables multi-positives.
        gather: Gather embeddings, masks and targets across ranks when ``torch.distributed`` is initialised.
        tiled: Compute the loss block by block without the ``n x n`` logits (:mod:`scibind.align.tiled`);
            ``False`` uses the dense matrix (faster for small batches on GPU, needed for double backward).
        block_size: Side of the square blocks; ``None`` picks it from ``memory_budget_mb``.
        memory_budget_mb: MiB for the block temporaries when ``block_size`` is ``None``; ``None`` is the
            device's default (:func:`scibind.align.tiled.auto_block_size`).
    """

    def __init__(
        self,
        pairs: Sequence[Sequence[str]] | None = None,
        *,
        anchor: str | None = None,
        temperature: float = 0.07,
        learn_temperature: bool = True,
        max_logit_scale: float = 100.0,
        positive_target: str | None = None,
        gather: bool = True,
        tiled: bool = True,
        block_size: int | None = None,
        memory_budget_mb: float | None = None,
    ) -> None:
        super().__init__(temperature, learn_temperature, max_logit_scale)
        if block_size is not None and (
            isinstance(block_size, bool) or int(block_size) != block_size or block_size < 1
        ):
            raise ConfigError(
                f"objective option 'block_size' must be a positive integer or null, got {block_size}"
            )
        if memory_budget_mb is not None and not memory_budget_mb > 0:
            raise ConfigError(f"objective option 'memory_budget_mb' must be > 0, got {memory_budget_mb}")
        self.tiled = bool(tiled)
        self.block_size = None if block_size is None else int(block_size)
        self.memory_budget_mb = None if memory_budget_mb is None else float(memory_budget_mb)
        if pairs is not None and anchor is not None:
            raise ConfigError("objective options 'pairs' and 'anchor' exclude each other; set one of them")
        self.pairs = None if pairs is None else [as_pair(p) for p in pairs]
        self.anchor = anchor
        self.positive_target = positive_target
        self.gather = gather

    @property
    def fuses_normalization(self) -> bool:
        """Whether :meth:`pair_loss` L2-normalises its inputs itself (inside the tiled kernels).

        Then ``forward`` hands it the raw rows, so no normalised ``[B, D]`` copies are ever allocated.
        """
        return False

    def block_for(self, z: torch.Tensor) -> int:
        """The block side of the tiled loss for embeddings like ``z`` (``block_size`` or the budget's)."""
        if self.block_size is not None:
            return self.block_size
        return auto_block_size(z.dtype, z.device, self.memory_budget_mb)

    def pair_loss(self, za: torch.Tensor, zb: torch.Tensor, groups: torch.Tensor | None) -> torch.Tensor:
        """The loss of one pair over rows where both views are present.

        Positives are given as codes, not as an ``n x n`` matrix, so a blockwise implementation can build
        each block's positives itself (:func:`positive_mask` builds the dense matrix).

        Args:
            za: ``[n, D]`` L2-normalised embeddings of view ``a`` (``n >= 2``; global rows when gathered);
                raw rows when :attr:`fuses_normalization` is true.
            zb: ``[n, D]`` the same records' embeddings of view ``b``.
            groups: ``int64[n]`` group codes when at least two rows share a non-negative code (rows with
                the same code are positives of each other); ``None`` when each row's only positive is itself.

        Returns:
            A scalar tensor.
        """
        raise NotImplementedError

    def extra_parts(self) -> dict[str, torch.Tensor]:
        """Additional detached scalars to log (e.g. SigLIP's bias)."""
        return {}

    def forward(
        self,
        embeddings: Mapping[str, torch.Tensor],
        present: Mapping[str, torch.Tensor] | None = None,
        **targets: torch.Tensor,
    ) -> LossOutput:
        """Compute the mean of the pair losses.

        Args:
            embeddings: View -> ``[B, D]`` embeddings (rows of absent records are ignored, whatever they
                hold).
            present: View -> ``bool[B]`` presence masks; a view without a mask is present in every row.
            **targets: ``int64[B]`` target codes; the one named by ``positive_target`` (``group``) defines
                multi-positives, others are ignored.

        Returns:
            :class:`LossOutput` with the loss and detached parts.
        """
        pairs = view_pairs(self.pairs, self.anchor, list(embeddings))
        views = sorted({v for pair in pairs for v in pair})
        # The loss runs in float32 (or float64) even when the encoders ran under bf16/fp16 autocast.
        with no_autocast(embeddings[views[0]].device):
            return self._forward(embeddings, present, targets, pairs, views)

    def _forward(
        self,
        embeddings: Mapping[str, torch.Tensor],
        present: Mapping[str, torch.Tensor] | None,
        targets: Mapping[str, torch.Tensor],
        pairs: list[tuple[str, str]],
        views: list[str],
    ) -> LossOutput:
        z, masks, groups = self._prepare(embeddings, present, targets, views)
        losses: dict[str, torch.Tensor] = {}
        for a, b in pairs:
            if z[a].shape[1] != z[b].shape[1]:
                raise ShapeError(
                    f"views {a!r} and {b!r} have embedding widths {z[a].shape[1]} and {z[b].shape[1]}; "
                    "give every tower the same embed_dim"
                )
            rows = masks[a] & masks[b]
            n = int(rows.sum())
            if n < 2:
                losses[pair_key(a, b)] = self._zero_loss(z[a], z[b])
                continue
            if n == rows.shape[0]:
                za, zb, g = z[a], z[b], groups
            else:
                za, zb, g = z[a][rows], z[b][rows], None if groups is None else groups[rows]
            losses[pair_key(a, b)] = self.pair_loss(za, zb, g if g is not None and shares_groups(g) else None)
        loss = torch.stack(list(losses.values())).mean()
        parts = {k: v.detach() for k, v in losses.items()}
        scale = self.scale().detach()
        parts.update(logit_scale=scale, temperature=1.0 / scale, **self.extra_parts())
        return LossOutput(loss=loss, parts=parts)

    def _prepare(
        self,
        embeddings: Mapping[str, torch.Tensor],
        present: Mapping[str, torch.Tensor] | None,
        targets: Mapping[str, torch.Tensor],
        views: list[str],
    ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], torch.Tensor | None]:
        """Check shapes, normalise, build masks and groups, and gather them across ranks."""
        batch = {v: embeddings[v].shape[0] if embeddings[v].dim() == 2 else -1 for v in views}
        if any(n < 0 for n in batch.values()) or len(set(batch.values())) != 1:
            shapes = {v: tuple(embeddings[v].shape) for v in views}
            raise ShapeError(
                f"objective embeddings must be [B, D] with the same B for every view, got {shapes}; "
                "pass zero rows (and present=False) for absent records"
            )
        size = next(iter(batch.values()))
        device = embeddings[views[0]].device
        z = {}
        for v in views:
            e = embeddings[v]
            e = e.to(torch.promote_types(e.dtype, torch.float32))
            if not self.fuses_normalization:
                e = l2_normalize(e) if self.tiled else F.normalize(e, dim=-1)
            z[v] = e
        masks = {v: _mask(present, v, size, device) for v in views}
        groups = None
        if self.positive_target is not None and targets.get(self.positive_target) is not None:
            groups = torch.as_tensor(targets[self.positive_target], device=device).to(torch.int64)
            if groups.shape != (size,):
                raise ShapeError(
                    f"target {self.positive_target!r} must have shape [{size}] (one code per row), got "
                    f"{tuple(groups.shape)}"
                )
        if self.gather and is_distributed():
            sizes = gather_sizes(size, device)
            z = {v: gather_with_grad(t, sizes) for v, t in z.items()}
            masks = {v: gather_no_grad(m, sizes) for v, m in masks.items()}
            groups = None if groups is None else gather_no_grad(groups, sizes)
        return z, masks, groups

    def _zero_loss(self, za: torch.Tensor, zb: torch.Tensor) -> torch.Tensor:
        """0, connected to the embeddings and every parameter so each backward reaches all of them."""
        # Sums over empty slices: exactly 0 with zero gradients, whatever (even non-finite) values rows hold.
        zero = za[:0].sum() + zb[:0].sum()
        for p in self.parameters():
            zero = zero + p.reshape(-1)[:0].sum()
        return zero


def _mask(
    present: Mapping[str, torch.Tensor] | None, view: str, size: int, device: torch.device
) -> torch.Tensor:
    if present is None or present.get(view) is None:
        return torch.ones(size, dtype=torch.bool, device=device)
    mask = torch.as_tensor(present[view], device=device)
    if mask.shape != (size,):
        raise ShapeError(f"present[{view!r}] must be a bool[{size}] mask, got shape {tuple(mask.shape)}")
    return mask.to(torch.bool)
