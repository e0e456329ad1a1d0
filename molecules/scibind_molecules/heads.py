"""The Text2Mol retrieval protocol: each query ranked against the whole eval gallery, both directions.

Keys (for views ``text`` and ``molecule``): ``text->molecule/Hits@1``, ``Hits@10`` and ``mean_rank``, and the
same for ``molecule->text``. MRR and R@k come from ``core/retrieval`` (same ranks), which recipes run beside
this head; set ``mrr: true`` to have this head report ``MRR`` too when ``core/retrieval`` is not run. The
rank of a query is 1 + the number of gallery items scoring strictly higher than its own pair (ties in the
query's favour), as in Edwards et al. 2021.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from scibind.errors import ConfigError

__all__ = ["Text2MolRetrieval", "ranks"]


def ranks(queries: torch.Tensor, gallery: torch.Tensor, chunk_size: int = 512) -> torch.Tensor:
    """Rank (1 = best) of ``gallery[i]`` for ``queries[i]`` by cosine of L2-normalised rows: ``int64[n]``."""
    out = []
    for start in range(0, len(queries), chunk_size):
        q = queries[start : start + chunk_size].float()
        scores = q @ gallery.float().T
        own = scores[torch.arange(len(q)), torch.arange(start, start + len(q))]
        out.append((scores > own[:, None]).sum(dim=1) + 1)
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.long)


class Text2MolRetrieval:
    """Cross-modal retrieval with Hits@k, MRR and mean rank over the whole gallery.

    Args:
        text_view: The text view (default ``text``).
        molecule_view: The molecule view (default ``molecule``).
        ks: Hits@k cut-offs.
        mrr: Also report ``MRR`` (clashes with ``core/retrieval``'s key of the same name).
    """

    def __init__(
        self,
        text_view: str = "text",
        molecule_view: str = "molecule",
        ks: Sequence[int] = (1, 10),
        mrr: bool = False,
    ) -> None:
        if not ks or min(ks) < 1:
            raise ConfigError(f"molecules/text2mol: ks must be positive integers, got {list(ks)}")
        self.text_view, self.molecule_view, self.ks, self.mrr = text_view, molecule_view, tuple(ks), mrr

    def __call__(self, ctx: Any) -> dict[str, float]:
        """Metrics over the records where both views are present."""
        task = "molecules/text2mol"
        both = ctx.require_view(self.text_view, task) & ctx.require_view(self.molecule_view, task)
        text = ctx.embeddings[self.text_view][both]
        mol = ctx.embeddings[self.molecule_view][both]
        metrics: dict[str, float] = {}
        for name, queries, gallery in (
            (f"{self.text_view}->{self.molecule_view}", text, mol),
            (f"{self.molecule_view}->{self.text_view}", mol, text),
        ):
            r = ranks(queries, gallery).double()
            n = len(r)
            for k in self.ks:
                metrics[f"{name}/Hits@{k}"] = float((r <= k).double().mean()) if n else float("nan")
            if self.mrr:
                metrics[f"{name}/MRR"] = float((1.0 / r).mean()) if n else float("nan")
            metrics[f"{name}/mean_rank"] = float(r.mean()) if n else float("nan")
        return metrics
