"""``medical_imaging/mgca``: MGCA's three alignment levels as one objective (Wang et al., NeurIPS 2022).

MGCA (Multi-Granularity Cross-modal Alignment) aligns a radiograph and its report at three levels:

* **instance**: the pooled image and report embeddings (``core/clip``, InfoNCE over the batch);
* **token**: image patches (feature-map cells) and report words (``core/filip``: each token finds its best
  counterpart on the other side; MGCA's cross-attention token alignment reduces to this late interaction);
* **disease (prototype)**: image and report agree on Sinkhorn-balanced codes over learnable prototypes
  (``core/prototype``, swapped prediction).

A recipe has one objective, so this module builds the three core objectives with
:func:`scibind.create_objective` and returns their weighted sum::

    loss = instance_weight * L_clip + token_weight * L_filip + prototype_weight * L_prototype

It declares ``needs_tokens`` so the trainer passes ``tokens=`` / ``token_masks=`` (for ``token_views``,
default every view whose encoder has ``forward_tokens``), which go to the token level only. Each level keeps
its own learnable temperature. A weight of 0 skips that level (its parameters then get no gradient).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from scibind.align.output import LossOutput
from scibind.errors import ConfigError
from torch import nn

__all__ = ["LEVELS", "MgcaObjective"]

LEVELS = ("instance", "token", "prototype")
"""The three levels, in the order their losses are summed."""


class MgcaObjective(nn.Module):
    """Weighted sum of ``core/clip`` (instance), ``core/filip`` (token) and ``core/prototype`` (disease).

    Args:
        embed_dim: Width of the joint space (the prototypes' width; the recipe's ``embed_dim``).
        n_prototypes: Number of disease prototypes.
        instance_weight: Weight of the instance level (``core/clip``).
        token_weight: Weight of the token level (``core/filip``).
        prototype_weight: Weight of the disease level (``core/prototype``).
        temperature: Initial temperature of the instance and token levels.
        prototype_temperature: Initial temperature of the prototype predictions.
        positive_target: Label whose equal values are positives at the instance level (``core/clip``).
        token_views: Views whose tokens the trainer passes; ``None`` = every view with ``forward_tokens``.
        pairs: View pairs of every level; ``None`` = every pair.
        instance_kwargs: Further ``core/clip`` options.
        token_kwargs: Further ``core/filip`` options.
        prototype_kwargs: Further ``core/prototype`` options (``epsilon``, ``sinkhorn_iters``, ...).

    Raises:
        ConfigError: A weight is negative, all weights are 0, or a core objective rejects its options.
    """

    needs_tokens = True

    def __init__(
        self,
        embed_dim: int,
        n_prototypes: int = 16,
        instance_weight: float = 1.0,
        token_weight: float = 1.0,
        prototype_weight: float = 1.0,
        temperature: float = 0.07,
        prototype_temperature: float = 0.1,
        positive_target: str | None = None,
        token_views: Sequence[str] | None = None,
        pairs: Sequence[Sequence[str]] | None = None,
        instance_kwargs: Mapping[str, Any] | None = None,
        token_kwargs: Mapping[str, Any] | None = None,
        prototype_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        import scibind

        weights = {"instance": instance_weight, "token": token_weight, "prototype": prototype_weight}
        if any(float(w) < 0 for w in weights.values()) or not any(float(w) > 0 for w in weights.values()):
            raise ConfigError(
                f"medical_imaging/mgca: weights must be >= 0 and not all 0, got {weights}; set "
                "instance_weight, token_weight and prototype_weight"
            )
        self.weights = {k: float(v) for k, v in weights.items()}
        self.instance = scibind.create_objective(
            "core/clip",
            pairs=pairs,
            temperature=temperature,
            positive_target=positive_target,
            **dict(instance_kwargs or {}),
        )
        self.token = scibind.create_objective(
            "core/filip",
            pairs=pairs,
            temperature=temperature,
            token_views=token_views,
            **dict(token_kwargs or {}),
        )
        self.prototype = scibind.create_objective(
            "core/prototype",
            embed_dim=embed_dim,
            n_prototypes=n_prototypes,
            pairs=pairs,
            temperature=prototype_temperature,
            clip_weight=0.0,
            **dict(prototype_kwargs or {}),
        )

    @property
    def token_views(self) -> list[str] | None:
        """The views whose tokens the token level asks the trainer for (``None``: every token view)."""
        return self.token.token_views

    def forward(
        self,
        embeddings: Mapping[str, torch.Tensor],
        present: Mapping[str, torch.Tensor] | None = None,
        *,
        tokens: Mapping[str, torch.Tensor] | None = None,
        token_masks: Mapping[str, torch.Tensor] | None = None,
        **targets: torch.Tensor,
    ) -> LossOutput:
        """Weighted sum of the three levels.

        Args:
            embeddings: View -> ``[B, D]`` pooled embeddings.
            present: View -> ``bool[B]``.
            tokens: View -> ``[B, T, D]`` token embeddings (token level only; without them the token level
                sees each view's pooled embedding as one token, i.e. CLIP).
            token_masks: View -> ``bool[B, T]``: which tokens are real.
            targets: Label codes; ``positive_target`` is read by the instance level.

        Returns:
            The summed loss; parts ``<level>_loss`` (unweighted) and each level's own parts prefixed
            ``<level>/``.
        """
        outputs: dict[str, LossOutput] = {}
        if self.weights["instance"] > 0:
            outputs["instance"] = self.instance(embeddings, present, **targets)
        if self.weights["token"] > 0:
            outputs["token"] = self.token(
                embeddings, present, tokens=tokens, token_masks=token_masks, **targets
            )
        if self.weights["prototype"] > 0:
            outputs["prototype"] = self.prototype(embeddings, present, **targets)
        loss = torch.stack([self.weights[k] * out.loss for k, out in outputs.items()]).sum()
        parts: dict[str, torch.Tensor] = {}
        for level, out in outputs.items():
            parts[f"{level}_loss"] = out.loss.detach()
            parts.update({f"{level}/{k}": v.detach() for k, v in out.parts.items()})
        return LossOutput(loss, parts)
