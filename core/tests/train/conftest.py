"""Fixtures of the training tests: a tiny recipe on a small synthetic dataset."""

from __future__ import annotations

import copy
import os
import socket
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[3]
VENV_BIN = Path(sys.executable).parent

TINY: dict[str, Any] = {
    "name": "tiny",
    "embed_dim": 16,
    "towers": {
        "view_a": {
            "modality": "vector",
            "encoder": "core/mlp",
            "encoder_kwargs": {"in_dim": 32, "embed_dim": 32, "hidden_dim": 32, "n_layers": 2},
        },
        "view_b": {
            "modality": "vector",
            "encoder": "core/mlp",
            "encoder_kwargs": {"in_dim": 48, "embed_dim": 32, "hidden_dim": 32, "n_layers": 2},
        },
    },
    "objective": {"name": "core/clip", "kwargs": {"positive_target": None}},
    "data": {"dataset": "core/synthetic-pairs", "dataset_kwargs": {"n": 300, "seed": 1}, "labels": ["label"]},
    "train": {
        "batch_size": 32,
        "max_steps": 10,
        "checkpoint_every": 5,
        "lr": 0.003,
        "warmup_steps": 3,
        "log_every": 1,
        "seed": 0,
    },
    "eval": {"tasks": []},
}


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


@pytest.fixture
def write_recipe(tmp_path: Path):
    """``write_recipe(**sections) -> Path``: the tiny recipe, updated with ``sections``, as a YAML file."""

    def write(name: str = "tiny.yaml", **sections: Any) -> Path:
        path = tmp_path / name
        path.write_text(yaml.safe_dump(_merge(TINY, sections)), encoding="utf-8")
        return path

    return write


def subprocess_env() -> dict[str, str]:
    """Environment of ``scibind`` subprocesses: one thread, so results are bit-reproducible across runs."""
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
