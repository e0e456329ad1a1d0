from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scibind.cli.main import main
from scibind.store import EmbeddingStore


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        main(list(args))
    out = capsys.readouterr()
    code = info.value.code
    return (code if isinstance(code, int) else 1), out.out, out.err


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from scibind.train import load_recipe, train

    run_dir = tmp_path_factory.mktemp("run")
    overrides = [
        "train.max_steps=20",
        "train.checkpoint_every=20",
        "data.dataset_kwargs.n=300",
        "train.batch_size=64",
        "eval.tasks=[]",
    ]
    train(load_recipe("core/synthetic-clip", overrides), run_dir)
    return run_dir


def test_evaluate_command_writes_metrics_and_report(trained_run, capsys, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("SCIBIND_REPORT_UMAP", "0")
    code, out, err = run_cli(capsys, "evaluate", "--run-dir", str(trained_run), "--json")
    assert code == 2 and "has no eval.tasks" in err
    tasks = "eval.tasks=[{name: core/retrieval}, {name: core/knn, label: label, view: view_a, k: 5}]"
    code, out, err = run_cli(capsys, "evaluate", "--run-dir", str(trained_run), "--set", tasks, "--json")
    assert code == 0, err
    result = json.loads(out)
    on_disk = json.loads((trained_run / "eval" / "metrics.json").read_text())
    assert result["metrics"] == pytest.approx(on_disk)
    n = on_disk["view_a->view_b/n"]
    assert n == result["records"] and on_disk["view_a->view_b/R@1_chance"] == pytest.approx(1 / n)
    assert on_disk["view_a->view_b/R@1"] > 10 * on_disk["view_a->view_b/R@1_chance"]
    assert "knn/view_a/label/accuracy" in on_disk
    assert (trained_run / "report.html").exists() and result["report"] == str(trained_run / "report.html")
    code, out, err = run_cli(
        capsys, "evaluate", "--run-dir", str(trained_run), "--set", tasks, "--out", str(tmp_path / "other")
    )
    assert code == 0, err
    assert "view_a->view_b/R@1" in out and (tmp_path / "other" / "metrics.json").exists()


def test_embed_then_search_finds_each_records_partner(trained_run, capsys, tmp_path) -> None:
    store_path = tmp_path / "emb.parquet"
    code, out, err = run_cli(
        capsys,
        "embed",
        "--run-dir",
        str(trained_run),
        "--out",
        str(store_path),
        "--batch-size",
        "64",
        "--json",
    )
    assert code == 0, err
    summary = json.loads(out)
    store = EmbeddingStore.read(store_path)
    assert summary["views"] == {v: len(store[v].ids) for v in store.views} and store.views == [
        "view_a",
        "view_b",
    ]
    assert list(store["view_a"].metadata.columns) == ["label", "group"]
    np.save(tmp_path / "q.npy", store["view_b"].vectors[:3])
    code, out, err = run_cli(
        capsys,
        "search",
        str(store_path),
        "--vector-file",
        str(tmp_path / "q.npy"),
        "--view",
        "view_b",
        "--k",
        "2",
        "--json",
    )
    assert code == 0, err
    hits = json.loads(out)
    assert [h["hits"][0]["id"] for h in hits] == store["view_b"].ids[:3]
    assert hits[0]["hits"][0]["score"] == pytest.approx(1.0, abs=1e-5)
    code, _, err = run_cli(
        capsys, "search", str(store_path), "--text", "hello", "--run-dir", str(trained_run)
    )
    assert code == 2 and "no text tower" in err
    code, _, err = run_cli(capsys, "embed", "--run-dir", str(trained_run), "--views", "nope")
    assert code == 2 and "not produced by this model" in err
