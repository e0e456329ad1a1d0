from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch
from scibind.errors import ConfigError, MissingDependencyError, ShapeError
from scibind.store import EmbeddingStore, search


def make_store() -> tuple[EmbeddingStore, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    a = rng.standard_normal((40, 6)).astype(np.float32) * rng.uniform(0.5, 3, (40, 1)).astype(np.float32)
    b = rng.standard_normal((25, 6)).astype(np.float32)
    store = (
        EmbeddingStore().add([f"a{i}" for i in range(40)], "x", a).add([f"b{i}" for i in range(25)], "y", b)
    )
    return store, a, b


def brute_force(gallery: np.ndarray, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    g = gallery / np.linalg.norm(gallery, axis=1, keepdims=True)
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    sims = qn @ g.T
    order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(sims, order, 1)


@pytest.mark.parametrize("chunk_size", [7, 65536])
def test_torch_search_matches_numpy_brute_force(chunk_size: int) -> None:
    store, a, b = make_store()
    q = np.random.default_rng(1).standard_normal((5, 6)).astype(np.float32)
    result = search(store, torch.from_numpy(q), k=8, backend="torch", chunk_size=chunk_size)
    order, sims = brute_force(np.concatenate([a, b]), q, 8)
    names = [f"a{i}" for i in range(40)] + [f"b{i}" for i in range(25)]
    assert result.ids == [[names[j] for j in row] for row in order]
    assert result.views == [["x" if j < 40 else "y" for j in row] for row in order]
    np.testing.assert_allclose(result.scores.numpy(), sims, rtol=1e-5, atol=1e-6)


def test_view_filter_single_query_and_small_store() -> None:
    store, _, b = make_store()
    result = search(store, b[3], k=100, view="y")
    assert len(result.ids) == 1 and len(result.ids[0]) == 25
    assert result.ids[0][0] == "b3"
    assert result.scores[0, 0].item() == pytest.approx(1.0)
    assert set(result.views[0]) == {"y"}
    assert result.to_records()[0][0] == {"id": "b3", "view": "y", "score": pytest.approx(1.0)}


def test_search_errors() -> None:
    store, _, _ = make_store()
    with pytest.raises(ShapeError, match="widths"):
        search(store, np.zeros((1, 3)))
    with pytest.raises(ConfigError, match="backend"):
        search(store, np.ones(6), backend="annoy")
    with pytest.raises(ConfigError, match="k must be"):
        search(store, np.ones(6), k=0)


@pytest.mark.skipif(importlib.util.find_spec("faiss") is not None, reason="faiss is installed")
def test_faiss_backend_without_faiss_says_how_to_install() -> None:
    store, _, _ = make_store()
    with pytest.raises(MissingDependencyError, match="pip install faiss-cpu"):
        search(store, np.ones(6), backend="faiss")


@pytest.mark.skipif(importlib.util.find_spec("faiss") is None, reason="needs faiss")
def test_faiss_backend_matches_torch() -> None:
    store, _, _ = make_store()
    q = np.random.default_rng(2).standard_normal((3, 6)).astype(np.float32)
    assert search(store, q, k=5, backend="faiss").ids == search(store, q, k=5, backend="torch").ids
