"""Text queries end to end: train a text tower, embed the eval split, search it with a sentence."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

SCIBIND = shutil.which("scibind", path=str(Path(sys.executable).parent))


def run(*args: str) -> str:
    done = subprocess.run([SCIBIND, *args], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.slow
def test_sentence_query_finds_records_of_the_named_class(tmp_path):
    run_dir = tmp_path / "run"
    run("train", "core/synthetic-text-clip", "--run-dir", str(run_dir))
    store = tmp_path / "store.parquet"
    run("embed", "--run-dir", str(run_dir), "--out", str(store))
    labels = pd.read_parquet(run_dir / "data" / "manifest.parquet").set_index("id")["label"]
    for cls in ("class_1", "class_3"):
        args = ["--text", f"a sample of {cls}", "--run-dir", str(run_dir), "--k", "10", "--view", "view_a"]
        (answer,) = json.loads(run("search", str(store), *args, "--json"))
        ids = [hit["id"] for hit in answer["hits"]]
        assert len(ids) == 10
        assert (labels.loc[ids] == cls).mean() >= 0.8
