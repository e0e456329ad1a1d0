from __future__ import annotations

import json

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


def test_search_command_with_a_vector_file(tmp_path, capsys) -> None:
    vectors = np.eye(4, dtype=np.float32)
    vectors[3] = [0.9, 0.1, 0, 0]
    EmbeddingStore.write(tmp_path / "s.parquet", ["a", "b", "c", "d"], "x", vectors)
    np.save(tmp_path / "q.npy", np.array([1.0, 0, 0, 0], dtype=np.float32))
    code, out, err = run_cli(
        capsys,
        "search",
        str(tmp_path / "s.parquet"),
        "--vector-file",
        str(tmp_path / "q.npy"),
        "--k",
        "2",
        "--json",
    )
    assert code == 0, err
    hits = json.loads(out)[0]["hits"]
    assert [h["id"] for h in hits] == ["a", "d"]
    assert hits[1]["score"] == pytest.approx(0.9 / np.hypot(0.9, 0.1))
    code, out, _ = run_cli(
        capsys, "search", str(tmp_path / "s.parquet"), "--vector-file", str(tmp_path / "q.npy")
    )
    assert code == 0 and "query: q.npy[0]" in out


def test_search_command_errors(tmp_path, capsys) -> None:
    EmbeddingStore.write(tmp_path / "s.parquet", ["a"], "x", np.ones((1, 4), dtype=np.float32))
    np.save(tmp_path / "bad.npy", np.ones((1, 3), dtype=np.float32))
    code, _, err = run_cli(
        capsys, "search", str(tmp_path / "s.parquet"), "--vector-file", str(tmp_path / "bad.npy")
    )
    assert code == 2 and "widths" in err
    code, _, err = run_cli(capsys, "search", str(tmp_path / "s.parquet"))
    assert code == 2 and "--vector-file" in err
    code, _, err = run_cli(
        capsys, "search", str(tmp_path / "missing.parquet"), "--vector-file", str(tmp_path / "bad.npy")
    )
    assert code == 2 and "does not exist" in err
