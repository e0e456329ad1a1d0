from __future__ import annotations

import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from scibind.errors import DataError, MissingDependencyError, ShapeError
from scibind.store import EmbeddingStore


def vectors(n: int, d: int = 4, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)


def test_parquet_round_trip_appends_views(tmp_path) -> None:
    path = tmp_path / "emb.parquet"
    EmbeddingStore.write(
        path, ["a", "b", "c"], "text", vectors(3), {"label": ["x", None, "y"], "score": [1, 2, 3]}
    )
    store = EmbeddingStore.write(path, ["b", "c"], "vector", torch.from_numpy(vectors(2, seed=1)))
    assert store.views == ["text", "vector"]
    back = EmbeddingStore.read(path)
    assert back.views == ["text", "vector"]
    assert len(back) == 5
    np.testing.assert_array_equal(back["text"].vectors, vectors(3))
    np.testing.assert_array_equal(back["vector"].vectors, vectors(2, seed=1))
    assert back["vector"].ids == ["b", "c"]
    assert list(back["vector"].metadata.columns) == []
    meta = back["text"].metadata
    assert meta["label"].tolist()[0] == "x" and meta["label"].isna().tolist() == [False, True, False]
    assert meta["score"].tolist() == [1, 2, 3]
    table = pq.read_table(path)
    assert table.num_rows == 5
    assert table.schema.field("vector").type == pa.list_(pa.float32(), 4)
    assert table.column("view").to_pylist() == ["text"] * 3 + ["vector"] * 2


def test_writing_a_view_again_replaces_it(tmp_path) -> None:
    path = tmp_path / "emb.parquet"
    EmbeddingStore.write(path, ["a", "b"], "v", vectors(2))
    EmbeddingStore.write(path, ["z"], "v", vectors(1, seed=5))
    back = EmbeddingStore.read(path)
    assert back["v"].ids == ["z"]
    assert list(tmp_path.iterdir()) == [path]  # no temporary files left behind


def test_bad_input_errors(tmp_path) -> None:
    store = EmbeddingStore().add(["a"], "x", vectors(1, 4)).add(["a"], "y", vectors(1, 3))
    with pytest.raises(ShapeError, match="different widths"):
        store.save(tmp_path / "s.parquet")
    with pytest.raises(DataError, match="reserved"):
        EmbeddingStore().add(["a"], "x", vectors(1), {"vector": [1]})
    with pytest.raises(DataError, match="duplicate ids"):
        EmbeddingStore().add(["a", "a"], "x", vectors(2))
    with pytest.raises(ShapeError, match="one value per id"):
        EmbeddingStore().add(["a", "b"], "x", vectors(2), {"label": ["only one"]})
    with pytest.raises(ShapeError):
        EmbeddingStore().add(["a", "b"], "x", vectors(3))
    with pytest.raises(DataError, match="has no view 'nope'"):
        store["nope"]
    with pytest.raises(DataError, match="does not exist"):
        EmbeddingStore.read(tmp_path / "missing.parquet")
    pq.write_table(pa.table({"x": [1]}), tmp_path / "other.parquet")
    with pytest.raises(DataError, match="not a scibind embedding store"):
        EmbeddingStore.read(tmp_path / "other.parquet")


def test_zarr_round_trip(tmp_path) -> None:
    pytest.importorskip("zarr")
    path = tmp_path / "emb.zarr"
    EmbeddingStore.write(
        path, ["a", "b", "c"], "text", vectors(3), {"label": ["x", None, "y"], "t": [0.5, 1.5, 2.5]}
    )
    EmbeddingStore.write(path, ["c"], "wide", vectors(1, d=7))  # Zarr stores may mix widths
    back = EmbeddingStore.read(path)
    assert back.views == ["text", "wide"]
    np.testing.assert_array_equal(back["text"].vectors, vectors(3))
    assert back["wide"].vectors.shape == (1, 7)
    assert back["text"].ids == ["a", "b", "c"]
    assert back["text"].metadata["label"].tolist() == ["x", None, "y"]
    assert back["text"].metadata["t"].tolist() == [0.5, 1.5, 2.5]


def test_zarr_missing_names_the_pip_command(tmp_path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "zarr", None)
    with pytest.raises(MissingDependencyError, match="pip install 'zarr>=3'"):
        EmbeddingStore().add(["a"], "x", vectors(1)).save(tmp_path / "s.zarr")


def test_to_anndata(tmp_path) -> None:
    store = EmbeddingStore().add(["a", "b"], "cells", vectors(2), {"type": ["T", "B"], "n": [3, 4]})
    adata = store.to_anndata("cells")
    assert list(adata.obs_names) == ["a", "b"]
    np.testing.assert_array_equal(adata.obsm["X_scibind"], vectors(2))
    assert adata.obs["type"].tolist() == ["T", "B"]
    assert adata.obs["n"].tolist() == [3, 4]
    adata.write_h5ad(tmp_path / "cells.h5ad")
