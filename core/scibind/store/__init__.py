"""Embedding stores (Parquet / Zarr on disk, AnnData export) and exact top-k search."""

from __future__ import annotations

from scibind.store.search import FAISS_AUTO_MIN_ROWS, SearchResult, search
from scibind.store.store import EmbeddingStore, ViewEmbeddings

__all__ = [
    "FAISS_AUTO_MIN_ROWS",
    "EmbeddingStore",
    "SearchResult",
    "ViewEmbeddings",
    "search",
]
