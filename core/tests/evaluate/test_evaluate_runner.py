from __future__ import annotations

import json

import pytest
import torch
from scibind.errors import ConfigError, UnknownNameError
from scibind.evaluate import embed_dataset, evaluate, run_evaluation
from scibind.evaluate.retrieval import RetrievalTask
from scibind.store import EmbeddingStore

from .eval_standins import MultiTowerModel, make_dataset


def test_embed_dataset_batches_normalises_and_restores_mode() -> None:
    ds = make_dataset()
    model = MultiTowerModel(["a", "b"])
    model.train()
    emb = embed_dataset(model, ds, batch_size=5)
    assert model.training and model.calls == 3
    assert emb.ids == [f"r{i}" for i in range(12)]
    assert emb.present["b"].tolist() == [i != 5 for i in range(12)]
    assert emb.embeddings["b"][5].abs().sum() == 0
    expected = model.encode("a", torch.tensor(ds.manifest.frame["a"].tolist(), dtype=torch.float32)).detach()
    torch.testing.assert_close(emb.embeddings["a"], expected)
    assert emb.labels == {"kind": [None] + ["x" if i % 2 else "y" for i in range(1, 12)]}
    assert emb.groups == [f"g{i // 2}" for i in range(12)]
    only_a = embed_dataset(model, ds, views=["a"])
    assert list(only_a.embeddings) == ["a"]
    with pytest.raises(ConfigError, match="not produced"):
        embed_dataset(model, ds, views=["c"])


def test_evaluate_runs_registered_tasks_and_checks_them() -> None:
    ds = make_dataset()
    emb = embed_dataset(MultiTowerModel(["a", "b"]), ds)
    tasks = [
        {"name": "core/retrieval"},
        {"name": "core/geometry"},
        {"name": "core/knn", "label": "kind", "view": "a", "k": 3},
    ]
    metrics = evaluate(emb, tasks)
    assert metrics == {**RetrievalTask()(emb.context()), **metrics}
    assert metrics["a->b/n"] == 11
    assert "geometry/a,b/gap" in metrics and "knn/a/kind/accuracy" in metrics
    with pytest.raises(UnknownNameError):
        evaluate(emb, [{"name": "core/nope"}])
    with pytest.raises(
        ConfigError, match=r"eval.tasks\[0\] \(core/retrieval\): invalid options \['colour'\]"
    ):
        evaluate(emb, [{"name": "core/retrieval", "colour": "red"}])
    with pytest.raises(ConfigError, match="both produce metric"):
        evaluate(emb, ["core/retrieval", "core/retrieval"])
    with pytest.raises(ConfigError, match="has no 'name'"):
        evaluate(emb, [{"view": "a"}])


def test_run_evaluation_writes_metrics_and_store(tmp_path) -> None:
    ds = make_dataset()
    model = MultiTowerModel(["a", "b"])
    metrics = run_evaluation(
        tmp_path, model, ds, [{"name": "core/retrieval", "pairs": [["a", "b"]]}], batch_size=4
    )
    on_disk = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert on_disk == pytest.approx(metrics)
    # the stand-in views differ by 1% noise, so retrieval is near perfect
    assert metrics["a->b/R@1"] > 0.8 > metrics["a->b/R@1_chance"]
    store = EmbeddingStore.read(tmp_path / "eval" / "embeddings.parquet")
    assert store.views == ["a", "b"]
    assert len(store["b"].ids) == 11 and "r5" not in store["b"].ids
    assert store["a"].metadata["group"].tolist()[:3] == ["g0", "g0", "g1"]
    assert store["a"].metadata["kind"].tolist()[1:3] == ["x", "y"]
    embedded = embed_dataset(model, ds)
    torch.testing.assert_close(torch.from_numpy(store["a"].vectors), embedded.embeddings["a"])
    assert sorted(p.name for p in (tmp_path / "eval").iterdir()) == ["embeddings.parquet", "metrics.json"]


def test_heads_can_read_raw_view_data_of_the_embedded_records(tmp_path):
    import scibind
    from scibind.align.model import build_model
    from scibind.data.dataset import PairedDataset
    from scibind.data.manifest import read_manifest
    from scibind.errors import ConfigError
    from scibind.evaluate.runner import embed_dataset

    manifest = read_manifest(scibind.create_dataset("core/synthetic-pairs", tmp_path, n=40), views=["view_a"])
    dataset = PairedDataset(manifest, {"view_a": "vector"})
    model = build_model({"view_a": {"encoder": "core/tiny-mlp", "encoder_kwargs": {"in_dim": 32}}}, 8)
    ctx = embed_dataset(model, dataset, batch_size=16).context()
    raw = ctx.view_data("view_a", "test")
    assert len(raw) == 40
    for i in (0, 17, 39):
        expected = manifest.frame["view_a"].iloc[i]
        assert raw[i].tolist() == pytest.approx(list(expected))
    with pytest.raises(ConfigError, match="view_b"):
        ctx.view_data("view_b", "test")
