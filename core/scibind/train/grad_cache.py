"""Gradient caching (GradCache; Gao et al., 2021): a contrastive batch larger than activation memory allows.

A contrastive loss couples every record of the batch, so ordinary micro-batch accumulation changes the
loss (fewer negatives per micro-batch). GradCache keeps the loss of the whole batch and splits only the
*encoder* work:

1. embed the batch chunk by chunk **without** autograd graphs, saving the RNG state before each chunk;
2. compute the loss on the concatenated embeddings (leaf tensors) and back-propagate it: this yields the
   objective's parameter gradients and ``dL/dz`` for every embedding row, and costs ``O(B·D)``;
3. re-run each chunk **with** its graph, from its saved RNG state (so dropout draws the same masks), and
   back-propagate ``sum(z_chunk · dL/dz_chunk)``: by the chain rule this adds exactly the chunk's share of
   ``dL/dθ`` to the encoders' gradients.

Only one chunk's activations are alive at a time; the price is a second forward pass of the encoders.
With the tiled objectives (:mod:`scibind.align.tiled`) the loss itself needs ``O(B·D + block²)`` memory,
so the batch is bounded by the embeddings, not by activations or the logit matrix.

Under ``torch.distributed`` step 2 gathers across ranks as usual; step 3 has no collectives.

For a token-level objective (``token_views``; :mod:`scibind.align.tokens`) the token embeddings
``[n, T, D]`` are cached and replayed the same way, their chunks zero-padded to the largest ``T``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any

import torch

from scibind.align.output import LossOutput
from scibind.align.tokens import cat_tokens, embed_with_tokens
from scibind.data.types import Batch

__all__ = ["ChunkedCollate", "grad_cache_backward"]


class ChunkedCollate:
    """A collate function that returns a batch as a list of chunk batches of at most ``chunk_size`` records.

    Each chunk is collated by the dataset's own collate (so any modality's collate works), and the chunks
    concatenated in order are the batch.
    """

    def __init__(self, collate: Callable[[Sequence[Any]], Batch], chunk_size: int) -> None:
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        self.collate = collate
        self.chunk_size = int(chunk_size)

    def __call__(self, items: Sequence[Any]) -> list[Batch]:
        """Collate ``items`` in consecutive chunks."""
        items = list(items)
        return [self.collate(items[i : i + self.chunk_size]) for i in range(0, len(items), self.chunk_size)]


def _rng_state(device: torch.device) -> tuple[torch.Tensor, torch.Tensor | None]:
    cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    return torch.get_rng_state(), cuda


def _set_rng_state(state: tuple[torch.Tensor, torch.Tensor | None], device: torch.device) -> None:
    torch.set_rng_state(state[0])
    if state[1] is not None:
        torch.cuda.set_rng_state(state[1], device)


def grad_cache_backward(
    model: torch.nn.Module,
    objective: torch.nn.Module,
    chunks: Sequence[Batch],
    *,
    device: torch.device,
    autocast: Callable[[], contextlib.AbstractContextManager[Any]] = contextlib.nullcontext,
    loss_weight: float = 1.0,
    scale: Callable[[torch.Tensor], torch.Tensor] | None = None,
    token_views: Sequence[str] = (),
    adjust: Callable[[LossOutput, dict[str, torch.Tensor], Batch], LossOutput] | None = None,
) -> LossOutput:
    """Accumulate ``loss_weight · dL/dθ`` of the whole batch into ``.grad``, embedding it chunk by chunk.

    Args:
        model: The multi-tower model (``model(batch) -> {view: [n, D]}``).
        objective: The objective (``objective(embeddings, present, **targets) -> LossOutput``).
        chunks: The batch as consecutive chunk batches (:class:`ChunkedCollate`), on ``device``.
        device: The device (selects the CUDA RNG to save and restore).
        autocast: Context factory for the encoder forwards and the loss (the trainer's precision).
        loss_weight: Factor of the back-propagated loss (``1 / accumulate``).
        scale: Loss scaling before backward (an fp16 ``GradScaler.scale``); ``None`` for none.
        token_views: Views whose token embeddings the objective takes (``tokens=``, ``token_masks=``;
            :mod:`scibind.align.tokens`); chunks' token counts are zero-padded to the largest. Empty: the
            objective is called as ``objective(embeddings, present, **targets)``.
        adjust: ``adjust(out, embeddings, batch) -> out`` adds terms to the objective's output over the whole
            batch (the trainer's compatibility loss); ``batch`` holds the chunks' ids, presence masks and
            targets, without view data.

    Returns:
        The objective's output on the whole batch (its loss not weighted).
    """
    states = []
    outputs = []
    token_outputs = []
    with torch.no_grad():
        for chunk in chunks:
            states.append(_rng_state(device))
            with autocast():
                embedded, tokens = embed_with_tokens(model, chunk, token_views, chunk.targets)
                outputs.append(embedded)
                token_outputs.append(tokens)
    after = _rng_state(device)
    views = list(outputs[0])
    embeddings = {v: torch.cat([o[v] for o in outputs]).requires_grad_() for v in views}
    present = {v: torch.cat([c.present[v] for c in chunks]) for v in chunks[0].present}
    targets = {k: torch.cat([c.targets[k] for c in chunks]) for k in chunks[0].targets}
    extra: dict[str, dict[str, torch.Tensor]] = {}
    if token_views:
        extra = {
            "tokens": {
                v: cat_tokens([o["tokens"][v] for o in token_outputs]).requires_grad_() for v in token_views
            },
            "token_masks": {v: cat_tokens([o["token_masks"][v] for o in token_outputs]) for v in token_views},
        }
    with autocast():
        out = objective(embeddings, present, **extra, **targets)
        if adjust is not None:
            ids = [rid for chunk in chunks for rid in chunk.ids]
            out = adjust(out, embeddings, Batch(ids=ids, views={}, present=present, targets=targets))
    loss = out.loss * loss_weight
    (scale(loss) if scale is not None else loss).backward()
    offset = 0
    for chunk, state in zip(chunks, states, strict=True):
        n = len(chunk)
        _set_rng_state(state, device)
        with autocast():
            z, tok = embed_with_tokens(model, chunk, token_views, chunk.targets)
        terms = [
            (z[v] * embeddings[v].grad[offset : offset + n].to(z[v].dtype)).sum()
            for v in views
            if z[v].requires_grad and embeddings[v].grad is not None
        ]
        for v in token_views:
            t, grad = tok["tokens"][v], extra["tokens"][v].grad
            if t.requires_grad and grad is not None:
                terms.append((t * grad[offset : offset + n, : t.shape[1]].to(t.dtype)).sum())
        if terms:
            torch.stack(terms).sum().backward()
        offset += n
    _set_rng_state(after, device)
    return out
