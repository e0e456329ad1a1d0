"""``spatial_omics/batch-mixing``: how batches (donors, slides) mix in the joint space; per-batch retrieval.

HESCAPE found batch effects break image <-> expression alignment; this head makes them visible:

- **iLISI** (integration LISI, Korsunsky et al. 2019, with a fixed ``k``-nearest-neighbour set instead of
  the perplexity-weighted one): for each record, the inverse Simpson index ``1 / sum_b p_b^2`` of the batch
  proportions among its ``k`` nearest neighbours (cosine) in one view. 1 = neighbours all from one batch;
  the number of batches = perfectly mixed. Reported with the value a random neighbour set would give
  (``ilisi_random``, from the batch frequencies) and normalised as ``(ilisi - 1) / (ilisi_random - 1)``.
- **Per-batch retrieval**: ``R@k`` of every ordered view pair for the queries of each batch (gallery: all
  records), beside its chance ``k / n``. A batch far below the others is one the model did not align.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from scibind.errors import ConfigError
from scibind.evaluate.context import EvalContext

__all__ = ["BatchMixingTask", "ilisi"]

TASK = "spatial_omics/batch-mixing"


def ilisi(embeddings: np.ndarray, batches: Sequence[str], k: int = 30) -> tuple[float, float]:
    """Mean iLISI over records and its value for random neighbours.

    Args:
        embeddings: ``float[n, D]`` L2-normalised rows.
        batches: Batch of each row.
        k: Neighbours per record (capped at ``n - 1``).

    Returns:
        ``(ilisi, ilisi_random)``.
    """
    labels = np.unique(np.asarray(batches), return_inverse=True)[1]
    n = len(labels)
    k = max(1, min(int(k), n - 1))
    sims = embeddings @ embeddings.T
    np.fill_diagonal(sims, -np.inf)
    neighbours = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    counts = np.zeros((n, labels.max() + 1))
    np.add.at(counts, (np.repeat(np.arange(n), k), labels[neighbours].ravel()), 1.0)
    p = counts / k
    freq = np.bincount(labels) / n
    return float(np.mean(1.0 / (p**2).sum(1))), float(1.0 / (freq**2).sum())


class BatchMixingTask:
    """iLISI of every view and per-batch retrieval of every view pair.

    Keys: ``batch/<view>/ilisi``, ``.../ilisi_random``, ``.../ilisi_norm``, ``.../n_batches``, and
    ``batch/<a>-><b>/<batch>/R@<k>``, ``.../R@<k>_chance``, ``.../n``.

    Args:
        batch: Label column holding the batch; default: the manifest's ``group``.
        k: Neighbours of iLISI.
        recall_at: The ``k`` of per-batch ``R@k`` (HESCAPE reports R@5).
        views: Views to score (default: all).
        max_batches: Per-batch retrieval keys are written for at most this many batches (largest first).
    """

    def __init__(
        self,
        batch: str | None = None,
        k: int = 30,
        recall_at: int = 5,
        views: Sequence[str] | None = None,
        max_batches: int = 20,
    ) -> None:
        if k < 1 or recall_at < 1 or max_batches < 1:
            raise ConfigError(f"{TASK}: k, recall_at and max_batches must be >= 1")
        self.batch, self.k, self.recall_at = batch, int(k), int(recall_at)
        self.views = list(views) if views is not None else None
        self.max_batches = int(max_batches)

    def _batches(self, ctx: EvalContext) -> list[str | None]:
        if self.batch is not None:
            return ctx.require_label(self.batch, TASK)
        if ctx.groups is None:
            raise ConfigError(
                f"{TASK}: the eval manifest has no group column; set batch to the label column naming the "
                "donor / slide / batch"
            )
        return ctx.groups

    def __call__(self, ctx: EvalContext) -> dict[str, float]:
        """Score mixing per view and retrieval per batch."""
        from scibind.evaluate.retrieval import retrieval_ranks

        batches = self._batches(ctx)
        views = self.views or ctx.views
        for view in views:
            ctx.require_view(view, TASK)
        out: dict[str, float] = {}
        known = np.array([b is not None for b in batches])
        for view in views:
            idx = np.flatnonzero(ctx.present[view].numpy() & known)
            if len(idx) < 2:
                continue
            emb = ctx.embeddings[view][idx].double().numpy()
            value, random = ilisi(emb, [str(batches[i]) for i in idx], self.k)
            out[f"batch/{view}/ilisi"] = value
            out[f"batch/{view}/ilisi_random"] = random
            out[f"batch/{view}/ilisi_norm"] = (value - 1.0) / (random - 1.0) if random > 1.0 else float("nan")
            out[f"batch/{view}/n_batches"] = float(len({batches[i] for i in idx}))
        for a in views:
            for b in views:
                if a == b:
                    continue
                both = np.flatnonzero(ctx.present[a].numpy() & ctx.present[b].numpy() & known)
                if len(both) < 2:
                    continue
                t = torch.from_numpy(both)
                ranks = retrieval_ranks(ctx.embeddings[a][t].float(), ctx.embeddings[b][t].float()).numpy()
                names = np.array([str(batches[i]) for i in both])
                values, counts = np.unique(names, return_counts=True)
                for name in values[np.argsort(-counts, kind="stable")][: self.max_batches]:
                    sel = names == name
                    key = f"batch/{a}->{b}/{name}"
                    out[f"{key}/R@{self.recall_at}"] = float((ranks[sel] <= self.recall_at).mean())
                    out[f"{key}/R@{self.recall_at}_chance"] = min(1.0, self.recall_at / len(both))
                    out[f"{key}/n"] = float(sel.sum())
        if not out:
            raise ConfigError(f"{TASK}: no view has two records with a known batch")
        return out
