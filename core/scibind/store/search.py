"""Exact cosine top-k search of an :class:`~scibind.store.store.EmbeddingStore`.

Backends:

- ``"torch"``: exact; gallery and queries are L2-normalised and scored ``chunk_size`` gallery rows at a
  time, keeping a running top-k, so memory is ``Q x (chunk_size + k)`` whatever the store size.
- ``"faiss"``: exact inner product on normalised vectors (``IndexFlatIP``); needs ``faiss-cpu``.
- ``"auto"`` (default): faiss when it is importable and the searched rows number at least
  :data:`FAISS_AUTO_MIN_ROWS` (100,000), torch otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from scibind.errors import ConfigError, MissingDependencyError, ShapeError
from scibind.store.store import EmbeddingStore

__all__ = ["FAISS_AUTO_MIN_ROWS", "SearchResult", "search"]

FAISS_AUTO_MIN_ROWS = 100_000
BACKENDS = ("auto", "torch", "faiss")


@dataclass
class SearchResult:
    """Top-k hits per query, best first.

    Attributes:
        ids: ``[Q][k']`` record ids (``k' = min(k, rows searched)``).
        views: ``[Q][k']`` the view of each hit.
        scores: ``float32[Q, k']`` cosine similarities.
    """

    ids: list[list[str]]
    views: list[list[str]]
    scores: torch.Tensor

    def to_records(self) -> list[list[dict[str, Any]]]:
        """JSON-friendly ``[[{"id", "view", "score"}, ...], ...]``."""
        return [
            [
                {"id": i, "view": v, "score": float(s)}
                for i, v, s in zip(ids, views, scores.tolist(), strict=True)
            ]
            for ids, views, scores in zip(self.ids, self.views, self.scores, strict=True)
        ]


def search(
    store: EmbeddingStore,
    query: Any,
    k: int = 10,
    view: str | None = None,
    backend: str = "auto",
    chunk_size: int = 65536,
) -> SearchResult:
    """Find the ``k`` rows of ``store`` most cosine-similar to each query.

    Args:
        store: The store to search.
        query: ``[Q, D]`` or ``[D]`` tensor / array.
        k: Hits per query.
        view: Search only this view; default every row of every view.
        backend: ``"auto"``, ``"torch"`` or ``"faiss"`` (see the module docs).
        chunk_size: Gallery rows scored at once by the torch backend.

    Raises:
        ConfigError: Unknown backend or ``k < 1``.
        ShapeError: Query width differs from the store's.
        MissingDependencyError: ``backend="faiss"`` without faiss installed.
    """
    if backend not in BACKENDS:
        raise ConfigError(f"search backend must be one of {BACKENDS}, got {backend!r}")
    if k < 1:
        raise ConfigError(f"search k must be >= 1, got {k}")
    views = [view] if view is not None else store.views
    gallery = [store[v] for v in views]
    q = torch.as_tensor(
        np.asarray(query.detach().cpu() if hasattr(query, "detach") else query), dtype=torch.float32
    )
    q = q.reshape(1, -1) if q.ndim == 1 else q
    dims = {v: g.vectors.shape[1] for v, g in zip(views, gallery, strict=True)}
    if q.ndim != 2 or any(d != q.shape[1] for d in dims.values()):
        raise ShapeError(f"query has shape {tuple(q.shape)} but the store's vectors have widths {dims}")
    ids = [i for g in gallery for i in g.ids]
    row_views = [v for v, g in zip(views, gallery, strict=True) for _ in g.ids]
    vectors = (
        np.concatenate([g.vectors for g in gallery]) if gallery else np.zeros((0, q.shape[1]), np.float32)
    )
    q = F.normalize(q, dim=-1)
    if backend == "faiss" or (
        backend == "auto" and len(ids) >= FAISS_AUTO_MIN_ROWS and _faiss(required=False)
    ):
        scores, index = _search_faiss(q, vectors, k)
    else:
        scores, index = _search_torch(q, torch.from_numpy(vectors), k, chunk_size)
    return SearchResult(
        ids=[[ids[j] for j in row] for row in index.tolist()],
        views=[[row_views[j] for j in row] for row in index.tolist()],
        scores=scores,
    )


def _search_torch(
    q: torch.Tensor, gallery: torch.Tensor, k: int, chunk_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    best_scores = torch.empty(q.shape[0], 0)
    best_index = torch.empty(q.shape[0], 0, dtype=torch.long)
    for start in range(0, gallery.shape[0], chunk_size):
        chunk = F.normalize(gallery[start : start + chunk_size], dim=-1)
        scores = torch.cat([best_scores, q @ chunk.T], 1)
        index = torch.cat([best_index, torch.arange(start, start + chunk.shape[0]).expand(q.shape[0], -1)], 1)
        best_scores, pos = scores.topk(min(k, scores.shape[1]), dim=1)
        best_index = index.gather(1, pos)
    return best_scores, best_index


def _faiss(*, required: bool) -> Any:
    try:
        import faiss
    except ImportError as exc:
        if required:
            raise MissingDependencyError(
                "search backend 'faiss' needs faiss; pip install faiss-cpu (or use backend='torch')"
            ) from exc
        return None
    return faiss


def _search_faiss(q: torch.Tensor, vectors: np.ndarray, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    faiss = _faiss(required=True)
    gallery = np.ascontiguousarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(gallery, axis=1, keepdims=True)
    gallery = gallery / np.maximum(norms, 1e-12)
    index = faiss.IndexFlatIP(gallery.shape[1])
    index.add(gallery)
    scores, found = index.search(np.ascontiguousarray(q.numpy()), min(k, gallery.shape[0]))
    return torch.from_numpy(scores), torch.from_numpy(found).long()
