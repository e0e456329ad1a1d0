"""Evaluation heads on embeddings, the evaluation runner and the HTML report.

Heads are registered by the core plugin (``core/retrieval``, ``core/zero-shot``, ``core/linear-probe``,
``core/knn``, ``core/geometry``) and built with :func:`scibind.create_head`; each is called as
``task(ctx: EvalContext) -> dict[str, float]``.
"""

from __future__ import annotations

from scibind.evaluate.context import EncodeText, EvalContext
from scibind.evaluate.runner import EmbeddedSet, embed_dataset, evaluate, run_evaluation, write_metrics

__all__ = [
    "EmbeddedSet",
    "EncodeText",
    "EvalContext",
    "embed_dataset",
    "evaluate",
    "run_evaluation",
    "write_metrics",
]
