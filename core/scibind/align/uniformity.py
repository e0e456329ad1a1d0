"""CLIP plus uniformity and alignment regularisers ("It's Not a Modality Gap", Fahim et al. 2024).

Wang & Isola (2020) split the contrastive loss into *alignment* (positives close) and *uniformity*
(embeddings spread on the sphere). Fahim et al. show CLIP's optimum leaves the two modalities in separate
regions (the "contrastive gap") and close it by adding both terms, with uniformity taken over the *union*
of the two views' embeddings. For one pair of views with ``n`` rows where both are present::

    align(a, b)   = (1/n) Σ_i ||za_i - zb_i||^alpha                              (alpha = 2)
    uniform(a, b) = log( mean_{u ≠ v} exp(-t ||u - v||²) ),  u, v ∈ {za_1..za_n, zb_1..zb_n}   (t = 2)
    loss(a, b)    = clip_weight · CLIP(a, b) + alignment_weight · align + uniformity_weight · uniform

CLIP is the symmetric InfoNCE of ``core/clip`` (identity targets). The evaluation head ``core/geometry``
reports the gap, alignment and uniformity of a trained space. Pairs: every pair (default), explicit
``pairs`` or ``anchor``; the loss is the mean over pairs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch

from scibind.align.multiview import MultiViewObjective
from scibind.align.output import LossOutput
from scibind.align.pairs import pair_key, view_pairs
from scibind.align.soft_clip import soft_clip_loss
from scibind.errors import ConfigError

__all__ = ["UniformityAlignmentObjective", "alignment_loss", "uniformity_loss"]


def alignment_loss(za: torch.Tensor, zb: torch.Tensor, alpha: float = 2.0) -> torch.Tensor:
    """``mean_i ||za_i - zb_i||^alpha``."""
    return (za - zb).pow(2).sum(-1).pow(alpha / 2).mean()


def uniformity_loss(z: torch.Tensor, t: float = 2.0) -> torch.Tensor:
    """``log mean_{i ≠ j} exp(-t ||z_i - z_j||²)`` over the rows of ``z`` (``m >= 2``)."""
    m = z.shape[0]
    sq = (2 - 2 * (z @ z.T)).clamp_min(0)  # unit rows: ||u - v||² = 2 - 2 u·v
    off = ~torch.eye(m, dtype=torch.bool, device=z.device)
    return torch.logsumexp(-t * sq[off], 0) - math.log(m * (m - 1))


class UniformityAlignmentObjective(MultiViewObjective):
    """CLIP + alignment + uniformity over pairs of views (see the module docstring).

    Args:
        clip_weight: Weight of the CLIP term (0 = regularisers only).
        alignment_weight: Weight of the alignment term.
        uniformity_weight: Weight of the uniformity term.
        alpha: Exponent of the alignment distance.
        t: Scale of the uniformity kernel.
        pairs: Explicit pairs; ``None`` = every pair (or pairs to ``anchor``).
        anchor: Compare every view with this one only.
        temperature: Initial τ of the CLIP term.
        learn_temperature: Train ``logit_scale``.
        max_logit_scale: Clamp of ``1/τ``.
        gather: Gather across ranks under ``torch.distributed``.
    """

    def __init__(
        self,
        clip_weight: float = 1.0,
        alignment_weight: float = 1.0,
        uniformity_weight: float = 1.0,
        alpha: float = 2.0,
        t: float = 2.0,
        pairs: Sequence[Sequence[str]] | None = None,
        anchor: str | None = None,
        temperature: float = 0.07,
        learn_temperature: bool = True,
        max_logit_scale: float = 100.0,
        gather: bool = True,
    ) -> None:
        super().__init__(
            None,
            temperature=temperature,
            learn_temperature=learn_temperature,
            max_logit_scale=max_logit_scale,
            gather=gather,
        )
        weights = {
            "clip_weight": clip_weight,
            "alignment_weight": alignment_weight,
            "uniformity_weight": uniformity_weight,
        }
        for name, w in weights.items():
            if not w >= 0:
                raise ConfigError(f"objective option {name!r} must be >= 0, got {w}")
        if not (alpha > 0 and t > 0):
            raise ConfigError(f"objective options 'alpha' and 't' must be > 0, got {alpha} and {t}")
        self.clip_weight, self.alignment_weight, self.uniformity_weight = (
            clip_weight,
            alignment_weight,
            uniformity_weight,
        )
        self.alpha, self.t = float(alpha), float(t)
        self.pairs = None if pairs is None else [tuple(p) for p in pairs]
        self.anchor = anchor

    def forward(
        self,
        embeddings: Mapping[str, torch.Tensor],
        present: Mapping[str, torch.Tensor] | None = None,
        **targets: torch.Tensor,
    ) -> LossOutput:
        """Mean over pairs of the weighted sum; parts hold each term's mean over pairs."""
        pairs = view_pairs(self.pairs, self.anchor, list(embeddings))
        views = sorted({v for p in pairs for v in p})
        batch = self.prepare(embeddings, present, views)
        scale = self.scale()
        losses, terms = {}, {"clip": [], "alignment": [], "uniformity": []}
        for a, b in pairs:
            rows = batch.masks[a] & batch.masks[b]
            n = int(rows.sum())
            if n < 2:
                losses[pair_key(a, b)] = self.zero_loss(batch.z[a], batch.z[b])
                continue
            za, zb = batch.z[a][rows], batch.z[b][rows]
            logits = scale.to(za.dtype) * (za @ zb.T)
            clip = soft_clip_loss(logits, torch.eye(n, dtype=za.dtype, device=za.device))
            align = alignment_loss(za, zb, self.alpha)
            uniform = uniformity_loss(torch.cat([za, zb]), self.t)
            terms["clip"].append(clip.detach())
            terms["alignment"].append(align.detach())
            terms["uniformity"].append(uniform.detach())
            losses[pair_key(a, b)] = (
                self.clip_weight * clip + self.alignment_weight * align + self.uniformity_weight * uniform
            )
        loss = torch.stack(list(losses.values())).mean()
        parts = {k: v.detach() for k, v in losses.items()}
        parts.update({k: torch.stack(v).mean() for k, v in terms.items() if v})
        return LossOutput(loss, {**parts, **self.temperature_parts()})
