"""Cross-modal retrieval over the whole eval gallery: R@k, MRR and median rank, both directions.

For an ordered pair ``a->b`` every record where both views are present is a query (its ``a`` embedding) and
a gallery item (its ``b`` embedding). The rank of a query is ``1 +`` the number of *wrong* gallery items
scoring strictly higher (cosine) than its best correct one, so ties count in the query's favour. With
``match="id"`` the only correct item is the query's own record; with ``match="group"`` every record of the
same group is correct (records without a group match only themselves). Similarities are computed
``chunk_size`` queries at a time, so memory stays at ``chunk_size x n`` however large the gallery is.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import permutations

import numpy as np
import torch
from scipy.special import gammaln

from scibind.errors import ConfigError
from scibind.evaluate.context import EvalContext

__all__ = ["RetrievalTask", "chance_levels", "group_codes", "rank_metrics", "retrieval_ranks"]

TASK = "core/retrieval"


def retrieval_ranks(
    queries: torch.Tensor,
    gallery: torch.Tensor,
    *,
    groups: torch.Tensor | None = None,
    chunk_size: int = 256,
) -> torch.Tensor:
    """1-based rank of the first correct gallery item for every query.

    Args:
        queries: ``float[n, D]``; query ``i`` belongs to record ``i``.
        gallery: ``float[n, D]``; item ``i`` belongs to record ``i``.
        groups: ``int64[n]`` group codes; when given, items sharing the query's code are all correct.
        chunk_size: Queries scored at once (memory is ``chunk_size x n`` floats).

    Returns:
        ``int64[n]`` ranks, 1 = the best-scoring item is correct.
    """
    n = queries.shape[0]
    ranks = torch.empty(n, dtype=torch.long)
    gallery_t = gallery.T.contiguous()
    for start in range(0, n, chunk_size):
        stop = min(start + chunk_size, n)
        sims = queries[start:stop] @ gallery_t
        if groups is None:
            rows = torch.arange(stop - start)
            best = sims[rows, rows + start]
            ranks[start:stop] = (sims > best[:, None]).sum(1) + 1
        else:
            correct = groups[start:stop, None] == groups[None, :]
            best = sims.masked_fill(~correct, float("-inf")).amax(1)
            ranks[start:stop] = ((sims > best[:, None]) & ~correct).sum(1) + 1
    return ranks


def rank_metrics(ranks: torch.Tensor, ks: Sequence[int] = (1, 5, 10)) -> dict[str, float]:
    """``R@k`` (fraction of ranks <= k), ``MRR`` (mean 1/rank) and ``median_rank`` of 1-based ranks."""
    r = ranks.double()
    out = {f"R@{k}": float((r <= k).double().mean()) for k in ks}
    out["MRR"] = float((1.0 / r).mean())
    out["median_rank"] = float(np.median(ranks.numpy()))
    return out


def _log_comb(n: np.ndarray | float, k: np.ndarray | float) -> np.ndarray:
    return np.asarray(gammaln(np.add(n, 1)) - gammaln(np.add(k, 1)) - gammaln(np.subtract(n, k) + 1))


def chance_levels(positives: torch.Tensor, n: int, ks: Sequence[int] = (1, 5, 10)) -> dict[str, float]:
    """Expected ``R@k`` and ``MRR`` of a random ranking.

    A query with ``m`` correct items among ``n`` has its first correct item at rank ``r`` with probability
    ``C(n-r, m-1) / C(n, m)``; with ``m = 1`` this gives ``R@k = k/n`` and ``MRR = H_n / n``.

    Args:
        positives: ``int64[q]`` number of correct gallery items per query (>= 1).
        n: Gallery size.
        ks: Cut-offs.

    Returns:
        ``{"R@k_chance": ..., "MRR_chance": ...}`` averaged over queries.
    """
    sizes, counts = np.unique(positives.numpy(), return_counts=True)
    weights = counts / counts.sum()
    recall = {k: 0.0 for k in ks}
    mrr = 0.0
    for m, w in zip(sizes.tolist(), weights.tolist(), strict=True):
        for k in ks:
            miss = 0.0 if n - m < k else float(np.exp(_log_comb(n - m, k) - _log_comb(n, k)))
            recall[k] += w * (1.0 - miss)
        r = np.arange(1, n - m + 2, dtype=np.float64)
        p = np.exp(_log_comb(n - r, m - 1) - _log_comb(n, m))
        mrr += w * float((p / r).sum())
    out = {f"R@{k}_chance": min(v, 1.0) for k, v in recall.items()}
    out["MRR_chance"] = mrr
    return out


def group_codes(groups: Sequence[str | None]) -> torch.Tensor:
    """Integer codes of group names; a record without a group gets a code of its own."""
    table: dict[str, int] = {}
    codes = []
    for i, g in enumerate(groups):
        codes.append(table.setdefault(str(g), len(table)) if g is not None else -1 - i)
    return torch.tensor(codes, dtype=torch.long)


def _group_sizes(codes: torch.Tensor) -> torch.Tensor:
    _, inverse, counts = torch.unique(codes, return_inverse=True, return_counts=True)
    return counts[inverse]


class RetrievalTask:
    """Cross-modal retrieval for every ordered pair of views (or both directions of configured pairs).

    Keys per direction ``a->b`` (``a->b@group`` with ``match="group"``): ``R@1``, ``R@5``, ``R@10``, ``MRR``,
    ``median_rank``, ``n`` (records where both views are present) and ``R@k_chance`` / ``MRR_chance``.

    Args:
        pairs: ``[[a, b], ...]`` views to pair, each evaluated both ways; default every pair of views.
        match: ``"id"`` (only the same record is correct) or ``"group"`` (any record of the same group).
        ks: Recall cut-offs.
        chunk_size: Queries scored at once.
    """

    def __init__(
        self,
        pairs: Sequence[Sequence[str]] | None = None,
        match: str = "id",
        ks: Sequence[int] = (1, 5, 10),
        chunk_size: int = 256,
    ) -> None:
        if match not in ("id", "group"):
            raise ConfigError(f"{TASK}: match must be 'id' or 'group', got {match!r}")
        if pairs is not None and any(len(p) != 2 for p in pairs):
            raise ConfigError(f"{TASK}: pairs must be a list of [view_a, view_b], got {pairs!r}")
        if not ks or any(int(k) < 1 for k in ks):
            raise ConfigError(f"{TASK}: ks must be positive integers, got {ks!r}")
        if chunk_size < 1:
            raise ConfigError(f"{TASK}: chunk_size must be >= 1, got {chunk_size}")
        self.pairs = None if pairs is None else [(str(a), str(b)) for a, b in pairs]
        self.match = match
        self.ks = tuple(int(k) for k in ks)
        self.chunk_size = int(chunk_size)

    def directions(self, ctx: EvalContext) -> list[tuple[str, str]]:
        """The ordered view pairs this task evaluates on ``ctx``."""
        if self.pairs is None:
            return list(permutations(ctx.views, 2))
        out: list[tuple[str, str]] = []
        for a, b in self.pairs:
            ctx.require_view(a, TASK)
            ctx.require_view(b, TASK)
            out.extend(d for d in ((a, b), (b, a)) if d not in out)
        return out

    def __call__(self, ctx: EvalContext) -> dict[str, float]:
        """Compute the metrics of every direction."""
        if self.match == "group" and ctx.groups is None:
            raise ConfigError(f"{TASK}: match='group' needs a 'group' column in the eval manifest")
        codes = group_codes(ctx.groups) if self.match == "group" and ctx.groups is not None else None
        out: dict[str, float] = {}
        for a, b in self.directions(ctx):
            prefix = f"{a}->{b}" + ("@group" if codes is not None else "")
            both = ctx.present[a].bool() & ctx.present[b].bool()
            n = int(both.sum())
            out[f"{prefix}/n"] = float(n)
            if n == 0:
                continue
            sub = None if codes is None else codes[both]
            ranks = retrieval_ranks(
                ctx.embeddings[a][both].float(),
                ctx.embeddings[b][both].float(),
                groups=sub,
                chunk_size=self.chunk_size,
            )
            positives = torch.ones(n, dtype=torch.long) if sub is None else _group_sizes(sub)
            out.update({f"{prefix}/{k}": v for k, v in rank_metrics(ranks, self.ks).items()})
            out.update({f"{prefix}/{k}": v for k, v in chance_levels(positives, n, self.ks).items()})
        return out
