from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
from scibind.evaluate.report import pca_2d, retrieval_table, write_index, write_report
from scibind.store import EmbeddingStore

PNG = b"\x89PNG\r\n\x1a\n"


def make_run(run_dir: Path) -> None:
    lines = [
        json.dumps({"step": s, "loss": 2.0 / (s + 1), "loss/a-b": 1.0 / (s + 1), "lr": 1e-3})
        for s in range(5)
    ]
    (run_dir / "metrics.jsonl").write_text("\n".join(lines) + "\n{truncated", encoding="utf-8")
    (run_dir / "eval").mkdir()
    metrics = {
        "a->b/R@1": 0.5,
        "a->b/R@1_chance": 0.05,
        "a->b/MRR": 0.6,
        "a->b/n": 20,
        "b->a/R@1": 0.4,
        "zero_shot/<script>/accuracy": 0.9,
    }
    (run_dir / "eval" / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((20, 8)).astype(np.float32)
    store = EmbeddingStore().add([f"r{i}" for i in range(20)], "a", x)
    store.add([f"r{i}" for i in range(20)], "b", x + 0.1 * rng.standard_normal((20, 8)).astype(np.float32))
    store.save(run_dir / "eval" / "embeddings.parquet")
    (run_dir / "config.yaml").write_text("name: <demo & test>\n", encoding="utf-8")


def test_report_has_every_section_and_escapes_text(tmp_path) -> None:
    make_run(tmp_path)
    out = write_report(tmp_path, umap=False)
    assert out == tmp_path / "report.html"
    page = out.read_text(encoding="utf-8")
    images = re.findall(r'<img src="([^"]+)"', page)
    assert images == [
        "report/loss.png",
        "report/retrieval.png",
        "report/similarity.png",
        "report/ranks.png",
        "report/pca.png",
    ]
    for rel in images:
        assert (tmp_path / rel).read_bytes().startswith(PNG)
    assert "1 unreadable line(s)" in page and "5 logged steps; last step 4" in page
    assert "&lt;script&gt;" in page and "<script>" not in page
    assert "&lt;demo &amp; test&gt;" in page
    assert re.search(r"<td>a-&gt;b</td><td>0.5 <span class=\"chance\">\(chance 0.05\)</span></td>", page)


def test_report_of_an_empty_run_dir(tmp_path) -> None:
    page = write_report(tmp_path).read_text(encoding="utf-8")
    assert "Nothing to report yet" in page


def test_retrieval_table_groups_keys_by_direction() -> None:
    table = retrieval_table(
        {"a->b/R@1": 0.5, "a->b@group/MRR": 0.2, "geometry/a,b/gap": 0.3, "knn/a/k/accuracy": 1}
    )
    assert table == {"a->b": {"R@1": 0.5}, "a->b@group": {"MRR": 0.2}}


def test_pca_2d_finds_the_main_axis() -> None:
    x = np.zeros((4, 3))
    x[:, 1] = [-3, -1, 1, 3]
    x[:, 2] = [0.1, -0.1, -0.1, 0.1]  # orthogonal to the main axis
    p = pca_2d(x)
    np.testing.assert_allclose(np.abs(p[:, 0]), [3, 1, 1, 3], atol=1e-9)
    np.testing.assert_allclose(np.abs(p[:, 1]), [0.1] * 4, atol=1e-9)


def test_index_links_relative_to_its_folder(tmp_path) -> None:
    (tmp_path / "runs" / "core").mkdir(parents=True)
    out = write_index(
        [("core <synthetic>", tmp_path / "runs" / "core" / "report.html")], tmp_path / "index.html"
    )
    page = out.read_text(encoding="utf-8")
    assert '<a href="runs/core/report.html">core &lt;synthetic&gt;</a>' in page
