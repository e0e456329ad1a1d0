"""``medical_imaging/mip-retrieval``: retrieve one view from several others by multilinear inner product.

``core/symile`` aligns three or more views through the multilinear inner product (MIP)
``[x, y, z] = Σ_d x_d y_d z_d``, so the right retrieval score for "which outcome goes with this radiograph
*and* this lab panel" is the MIP of the two query embeddings with each candidate (Symile's
``MIPSimilarity``), not a pairwise cosine. The MIP with a candidate ``c`` is the dot product of the
element-wise product of the queries with ``c``, so the ranks come from core's
:func:`scibind.evaluate.retrieval.retrieval_ranks` on that product.

``score: sum`` ranks by the sum of the pairwise cosines instead (``(q1 + q2) · c``), the natural score of
pairwise (CLIP-style) models, for comparison.

Keys (``<prefix>/<q1>+<q2>->target`` then ``/R@k``, ``/MRR``, ``/median_rank``, ``/n`` and the
``_chance`` levels): with ``label`` every record of the same label value is correct (e.g. an outcome
class), otherwise only the record itself.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import torch
from scibind.errors import ConfigError, DataError
from scibind.evaluate.context import EvalContext
from scibind.evaluate.retrieval import chance_levels, group_codes, rank_metrics, retrieval_ranks

__all__ = ["MipRetrievalTask", "mip_queries"]

TASK = "medical_imaging/mip-retrieval"


def mip_queries(parts: Sequence[torch.Tensor], score: str = "mip") -> torch.Tensor:
    """One ``[n, D]`` query whose dot product with a candidate is the score.

    ``"mip"``: the element-wise product of the views' embeddings (the multilinear inner product);
    ``"sum"``: their sum (the sum of pairwise cosines).
    """
    out = parts[0]
    for part in parts[1:]:
        out = out * part if score == "mip" else out + part
    return out


class MipRetrievalTask:
    """Retrieve ``target`` from the MIP with the ``queries`` views (see the module docstring).

    Args:
        queries: Two or more query views (e.g. ``[xray, labs]``).
        target: The retrieved view (e.g. ``outcome``).
        label: Label column whose equal values count as correct (``None``: only the record itself).
        ks: Recall cut-offs.
        prefix: First part of every key.
        score: ``"mip"`` (multilinear inner product, for Symile) or ``"sum"`` (sum of pairwise cosines).

    Raises:
        ConfigError: Fewer than two query views, the target among them, a bad prefix or score.
    """

    def __init__(
        self,
        queries: Sequence[str],
        target: str,
        label: str | None = None,
        ks: Sequence[int] = (1, 5, 10),
        prefix: str = "mip",
        score: str = "mip",
    ) -> None:
        if isinstance(queries, str) or len(queries) < 2 or target in queries:
            raise ConfigError(
                f"{TASK}: queries must list two or more views other than the target {target!r}, "
                f"got {queries!r}"
            )
        if not re.fullmatch(r"[0-9A-Za-z._-]+", prefix):
            raise ConfigError(f"{TASK}: prefix must be a word of letters, digits, '.', '_', '-'")
        if score not in ("mip", "sum"):
            raise ConfigError(f"{TASK}: score must be 'mip' or 'sum', got {score!r}")
        self.score = score
        self.queries = [str(q) for q in queries]
        self.target = str(target)
        self.label = label
        self.ks = tuple(int(k) for k in ks)
        self.prefix = prefix

    def __call__(self, ctx: EvalContext) -> dict[str, float]:
        """Ranks of the correct targets among every eval record's target embedding.

        Raises:
            ConfigError: A view or the label is not in the eval set.
            DataError: Fewer than two records have every view.
        """
        views = [*self.queries, self.target]
        missing = [v for v in views if v not in ctx.embeddings]
        if missing:
            raise ConfigError(f"{TASK}: views {missing} are not embedded; the views are {ctx.views}")
        if self.label is not None and self.label not in ctx.labels:
            raise ConfigError(
                f"{TASK}: label {self.label!r} is not an eval label; add it to data.labels "
                f"(labels: {sorted(ctx.labels)})"
            )
        rows = torch.stack([ctx.present[v] for v in views]).all(0)
        if self.label is not None:
            rows &= torch.tensor([v is not None for v in ctx.labels[self.label]], dtype=torch.bool)
        n = int(rows.sum())
        if n < 2:
            raise DataError(f"{TASK}: {n} eval records have all of {views}; need at least 2")
        query = mip_queries([ctx.embeddings[v][rows].double() for v in self.queries], self.score)
        gallery = ctx.embeddings[self.target][rows].double()
        index = rows.nonzero().flatten().tolist()
        codes = None
        if self.label is not None:
            codes = group_codes([ctx.labels[self.label][i] for i in index])
        ranks = retrieval_ranks(query, gallery, groups=codes)
        positives = torch.ones(n, dtype=torch.long) if codes is None else (codes[:, None] == codes).sum(1)
        key = f"{self.prefix}/{'+'.join(self.queries)}->{self.target}"
        out = {f"{key}/{k}": float(v) for k, v in rank_metrics(ranks, self.ks).items()}
        out.update({f"{key}/{k}": float(v) for k, v in chance_levels(positives, n, self.ks).items()})
        out[f"{key}/n"] = float(n)
        return out
