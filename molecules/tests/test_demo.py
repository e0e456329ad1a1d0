"""The demo dataset and recipe end to end: real files, training, retrieval far above chance."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pandas as pd


def test_nci_descriptions_are_deterministic_real_files(tmp_path):
    from scibind_molecules.datasets import make_nci_descriptions
    from scibind_molecules.readers import MoleculeReader

    first = make_nci_descriptions(tmp_path / "a", n=40, seed=1)
    second = make_nci_descriptions(tmp_path / "b", n=40, seed=1)
    assert first.read_bytes() == second.read_bytes()
    assert (tmp_path / "a" / "molecules.sdf").read_bytes() == (tmp_path / "b" / "molecules.sdf").read_bytes()
    frame = pd.read_csv(first)
    assert len(frame) == 40 and set(frame["split"]) == {"train", "eval"}
    sample = MoleculeReader().read(frame["molecule"][3], record_id=frame["id"][3], base_dir=first.parent)
    assert sample.meta["properties"]["description"] == frame["text"][3]
    assert frame["text"][3].startswith("The molecule C")


def test_demo_recipe_trains_and_retrieves_above_chance(tmp_path):
    run = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "scibind", "train", "molecules/nci-demo", "--run-dir", str(run)]
    cmd += ["--set", "train.max_steps=60", "--set", "data.dataset_kwargs.n=600"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((run / "eval" / "metrics.json").read_text())
    n = metrics["text->molecule/n"]
    assert n >= 100
    assert metrics["text->molecule/R@1"] > 10 * metrics["text->molecule/R@1_chance"]
    assert metrics["text->molecule/Hits@10"] > 0.3
    assert metrics["molecule->text/mean_rank"] < n / 4
