"""ORMA-style multi-grained text↔molecule contrastive objective (Min et al., BIBM 2024), ``molecules/orma``.

Three contrastive terms, each a symmetric InfoNCE over the batch with the shared learnable temperature:

- sentence↔molecule: the cosine of the pooled embeddings (CLIP);
- token↔atom: ``S_ij = Σ_kr P_kr <t_ik, a_jr>`` with ``P`` the entropic optimal-transport plan (Sinkhorn)
  between the text tokens of record ``i`` and the atom tokens of molecule ``j``
  (:func:`~scibind_molecules.ot.ot_similarity`);
- multi-token↔motif: OT between the text tokens and the motif tokens; each motif's multi-token
  representation is the plan-weighted mean of the text tokens sent to it, compared with the motif
  (:func:`~scibind_molecules.ot.multitoken_similarity`).

``loss = w_s L_sentence + w_a L_token_atom + w_m L_multitoken_motif``, each ``L = ½ [CE(s·S, diag) +
CE(s·Sᵀ, diag)]``.

Token inputs come from the trainer (``needs_tokens``; :mod:`scibind.align.tokens`): the text view's tokens
(``core/minilm``, ``core/tiny-text``, ``molecules/minilm-cached`` with ``tokens: true``) and the molecule
view's tokens from a graph encoder. With ``motifs: true`` the molecule encoder must emit atoms and motifs
interleaved (graph encoders' ``tokens: atoms+motifs``: token ``2i`` is atom ``i``, token ``2i+1`` motif
``i``), a layout that survives the zero-padding the trainer and ``torch.distributed`` gathering append.
A view given without tokens takes part with its pooled embedding as its only token (and only motif), so
with pooled embeddings alone every term is CLIP.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from scibind.align.distributed import gather_no_grad, gather_sizes, is_distributed
from scibind.align.multiview import MultiViewObjective
from scibind.align.output import LossOutput
from scibind.errors import ConfigError, ShapeError

from scibind_molecules.ot import check_ot_options, multitoken_similarity, ot_similarity

__all__ = ["OrmaObjective", "split_atoms_motifs"]


def split_atoms_motifs(
    tokens: torch.Tensor, mask: torch.Tensor
) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """Undo the interleaved ``atoms+motifs`` layout: ``((atoms, atom_mask), (motifs, motif_mask))``.

    Raises:
        ShapeError: The token count is odd (not the interleaved layout).
    """
    if tokens.shape[1] % 2:
        raise ShapeError(
            f"motifs=True expects interleaved atom/motif tokens (an even count), got {tuple(tokens.shape)}; "
            "give the molecule encoder tokens='atoms+motifs' (molecules/gine-motif) or set motifs: false"
        )
    return (tokens[:, 0::2], mask[:, 0::2]), (tokens[:, 1::2], mask[:, 1::2])


def _trim(tokens: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Drop trailing token positions that are padding in every row (the OT cost grows with the width)."""
    used = mask.any(0).nonzero()
    width = int(used.max()) + 1 if len(used) else 1
    return tokens[:, :width], mask[:, :width]


class OrmaObjective(MultiViewObjective):
    """Sentence↔molecule, token↔atom (OT) and multi-token↔motif (OT) contrastive loss (module docstring).

    Args:
        text_view: The text view.
        molecule_view: The molecule view.
        motifs: The molecule tokens interleave atoms and motifs (``tokens: atoms+motifs``); otherwise they are
            atoms only and the motif term is left out.
        sentence_weight: ``w_s``.
        token_atom_weight: ``w_a``.
        motif_weight: ``w_m``.
        epsilon: Entropic regularisation of the Sinkhorn plans (≥ 0.05; costs are ``1 - cosine``).
        n_iters: Sinkhorn iterations.
        differentiate_plan: Back-propagate through the Sinkhorn iterations (default: plans are constants,
            which gives the gradient of the entropic OT objective at its fixed point).
        rows_per_tile: Text records per ``[t, B, tokens, atoms]`` tile.
        temperature: Initial τ.
        learn_temperature: Train ``logit_scale``.
        max_logit_scale: Clamp of ``1/τ``.
        gather: Gather across ranks under ``torch.distributed``.
    """

    needs_tokens = True

    def __init__(
        self,
        text_view: str = "text",
        molecule_view: str = "molecule",
        motifs: bool = True,
        sentence_weight: float = 1.0,
        token_atom_weight: float = 1.0,
        motif_weight: float = 1.0,
        epsilon: float = 0.1,
        n_iters: int = 20,
        differentiate_plan: bool = False,
        rows_per_tile: int = 16,
        temperature: float = 0.07,
        learn_temperature: bool = True,
        max_logit_scale: float = 100.0,
        gather: bool = True,
    ) -> None:
        super().__init__(
            [text_view, molecule_view],
            temperature=temperature,
            learn_temperature=learn_temperature,
            max_logit_scale=max_logit_scale,
            gather=gather,
        )
        check_ot_options(epsilon, n_iters)
        weights = (sentence_weight, token_atom_weight, motif_weight)
        if min(weights) < 0 or sum(weights) <= 0:
            raise ConfigError(f"objective weights must be >= 0 and not all 0, got {weights}")
        if rows_per_tile < 1:
            raise ConfigError(f"objective option 'rows_per_tile' must be >= 1, got {rows_per_tile}")
        self.text_view, self.molecule_view = str(text_view), str(molecule_view)
        self.motifs = bool(motifs)
        self.weights = {"sentence": sentence_weight, "token_atom": token_atom_weight, "motif": motif_weight}
        self.ot = {
            "epsilon": float(epsilon),
            "n_iters": int(n_iters),
            "differentiate_plan": bool(differentiate_plan),
            "rows_per_tile": int(rows_per_tile),
        }
        # None: the trainer passes tokens of every view whose encoder has them; the others stay pooled.
        self.token_views = None

    def forward(
        self,
        embeddings: Mapping[str, torch.Tensor],
        present: Mapping[str, torch.Tensor] | None = None,
        *,
        tokens: Mapping[str, torch.Tensor] | None = None,
        token_masks: Mapping[str, torch.Tensor] | None = None,
        **targets: Any,
    ) -> LossOutput:
        """The weighted sum of the three symmetric InfoNCE terms.

        Args:
            embeddings: View -> ``[B, D]`` pooled embeddings.
            present: View -> ``bool[B]``.
            tokens: View -> ``[B, T, D]`` token embeddings (the trainer's ``token_views``).
            token_masks: View -> ``bool[B, T]`` real tokens (default: the non-zero ones).
            targets: Ignored (label codes the trainer passes to every objective).
        """
        views = self.select_views(embeddings)
        text, mol = self.text_view, self.molecule_view
        pooled = self.prepare(embeddings, present, views)
        tokens = dict(tokens or {})
        token_inputs = {v: tokens.get(v, embeddings[v]) for v in views}
        tok = self.prepare(token_inputs, present, views, tokens=True)
        tok.z = {v: z[:, None, :] if z.dim() == 2 else z for v, z in tok.z.items()}
        masks = {v: self._token_mask(tok.z[v], (token_masks or {}).get(v), token_inputs[v]) for v in views}
        rows = pooled.masks[text] & pooled.masks[mol]
        n = int(rows.sum())
        zt, zm = pooled.z[text], pooled.z[mol]
        if n < 2:
            zero = self.zero_loss(zt, zm, tok.z[text], tok.z[mol])
            return LossOutput(zero, {"sentence": zero.detach(), **self.temperature_parts()})
        t_tok, t_mask = tok.z[text][rows], masks[text][rows]
        m_tok, m_mask = tok.z[mol][rows], masks[mol][rows]
        motifs = None
        if self.motifs and mol in tokens:
            (m_tok, m_mask), motifs = split_atoms_motifs(m_tok, m_mask)
            motifs = _trim(*motifs)
        elif self.motifs:
            motifs = (m_tok, m_mask)  # pooled molecule embedding: its single motif
        (t_tok, t_mask), (m_tok, m_mask) = _trim(t_tok, t_mask), _trim(m_tok, m_mask)
        sims = {"sentence": zt[rows] @ zm[rows].T}
        if self.weights["token_atom"] > 0:
            sims["token_atom"] = ot_similarity(t_tok, m_tok, t_mask, m_mask, **self.ot)
        if motifs is not None and self.weights["motif"] > 0:
            sims["motif"] = multitoken_similarity(t_tok, motifs[0], t_mask, motifs[1], **self.ot)
        scale = self.scale()
        target = torch.arange(n, device=zt.device)
        parts = {}
        loss = zt.new_zeros(())
        for name, s in sims.items():
            logits = scale.to(s.dtype) * s
            parts[name] = (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
            loss = loss + self.weights[name] * parts[name]
        return LossOutput(loss, {**{k: v.detach() for k, v in parts.items()}, **self.temperature_parts()})

    def _token_mask(self, z: torch.Tensor, given: torch.Tensor | None, raw: torch.Tensor) -> torch.Tensor:
        """``bool[N, T]`` real tokens of prepared (possibly gathered) tokens ``z``."""
        if given is None:
            return z.detach().abs().sum(-1) > 0
        if raw.dim() != 3 or tuple(given.shape) != tuple(raw.shape[:2]):
            raise ShapeError(
                f"token_masks must be bool{list(raw.shape[:2])} for tokens of shape {tuple(raw.shape)}, "
                f"got {tuple(given.shape)}"
            )
        mask = given.to(device=z.device, dtype=torch.bool)
        if self.gather and is_distributed():
            padded = mask.new_zeros(mask.shape[0], z.shape[1])
            padded[:, : mask.shape[1]] = mask
            mask = gather_no_grad(padded, gather_sizes(mask.shape[0], mask.device))
        return mask
