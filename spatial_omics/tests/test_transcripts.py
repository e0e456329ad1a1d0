"""Xenium transcripts.parquet -> per-cell counts, on generated files with Xenium's column names."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scibind.errors import ReadError
from scibind_spatial_omics.matrix import ExpressionMatrix
from scibind_spatial_omics.pairs import build_spot_pairs
from scibind_spatial_omics.synthetic import make_synthetic_xenium, write_transcripts
from scibind_spatial_omics.transcripts import count_transcripts
from scibind_spatial_omics.xenium import read_xenium

ALIGNMENT = np.array([[0.5, 0.0, 100.0], [0.0, 0.5, 50.0], [0.0, 0.0, 1.0]])


def _write(path: Path, counts: np.ndarray, seed: int = 0, binary: bool = False) -> list[str]:
    n_cells, n_genes = counts.shape
    ids = [f"aaab{i:04d}-1" for i in range(n_cells)]
    rng = np.random.default_rng(seed)
    write_transcripts(
        path,
        counts,
        ids,
        [f"G{j}" for j in range(n_genes)],
        ALIGNMENT,
        rng.uniform(0, 100, n_cells),
        rng.uniform(0, 100, n_cells),
        rng,
        binary=binary,
    )
    return ids


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.integers(1, 12),
    st.integers(1, 6),
    st.integers(0, 2**16),
    st.booleans(),
    st.sampled_from([7, 100, 1 << 20]),
)
def test_counts_recover_the_matrix(tmp_path: Path, n_cells, n_genes, seed, binary, batch_rows):
    counts = np.random.default_rng(seed).poisson(1.5, size=(n_cells, n_genes))
    path = tmp_path / f"t{seed}_{n_cells}_{n_genes}_{binary}_{batch_rows}.parquet"
    ids = _write(path, counts, seed, binary)
    adata = count_transcripts(path, cells=ids, batch_rows=batch_rows)
    assert list(adata.obs_names) == ids
    # genes seen among counted molecules, in name order
    seen = [j for j in range(n_genes) if counts[:, j].any()]
    assert list(adata.var_names) == sorted(f"G{j}" for j in seen)
    order = [int(g[1:]) for g in adata.var_names]
    np.testing.assert_array_equal(adata.X.toarray(), counts[:, order])
    record = adata.uns["xenium_transcripts"]
    assert record["counted"] == counts.sum()
    extra = max(10, int(counts.sum()) // 10)
    assert (record["low_qv"], record["unassigned"], record["control"]) == (extra, extra, extra)
    assert record["read"] == counts.sum() + 3 * extra


def test_default_rows_and_errors(tmp_path: Path):
    counts = np.array([[0, 0], [3, 1], [0, 2]])
    path = tmp_path / "transcripts.parquet"
    ids = _write(path, counts)
    adata = count_transcripts(path)  # cells with counted molecules only, sorted
    assert list(adata.obs_names) == ids[1:]
    np.testing.assert_array_equal(adata.X.toarray(), [[3, 1], [0, 2]])
    strict = count_transcripts(path, cells=ids, min_qv=30.0)
    assert strict.X.sum() < counts.sum()  # molecules between Q20 and Q30 dropped too
    with pytest.raises(ReadError, match=r"transcripts\.parquet.*absent from the cell table"):
        count_transcripts(path, cells=ids[:2])
    pd.read_parquet(path).drop(columns=["qv"]).to_parquet(tmp_path / "noqv.parquet")
    with pytest.raises(ReadError, match=r"lacks \['qv'\]"):
        count_transcripts(tmp_path / "noqv.parquet")
    (tmp_path / "bad.parquet").write_text("not parquet", encoding="utf-8")
    with pytest.raises(ReadError, match=r"bad\.parquet"):
        count_transcripts(tmp_path / "bad.parquet")


def test_xenium_folder_with_transcripts_only(tmp_path: Path):
    folder = make_synthetic_xenium(tmp_path / "xen_t", seed=3, matrix_format="transcripts", n_cells=40)
    reference = make_synthetic_xenium(tmp_path / "xen_h5", seed=3, matrix_format="h5", n_cells=40)
    sample = read_xenium(folder)
    assert sample.matrix_path.name == "transcripts.parquet"
    counted = sample.read_expression()
    expected = read_xenium(reference).read_expression()
    assert list(counted.obs_names) == list(sample.positions.index)
    expected = expected[list(counted.obs_names), list(counted.var_names)]
    np.testing.assert_array_equal(counted.X.toarray(), expected.X.toarray())  # same counts as the h5
    manifest = build_spot_pairs({"xen": folder}, tmp_path / "pairs", tile_um=8.0, patch_px=8, n_hvg=10)
    assert len(pd.read_csv(manifest)) == 40
    record = ExpressionMatrix.open(tmp_path / "pairs" / "expression.h5ad").provenance["patches"]["samples"]
    assert record["xen"]["expression_file"] == "transcripts.parquet"
    assert record["xen"]["transcripts"]["counted"] == int(expected.X.sum())
    assert record["xen"]["transcripts"]["min_qv"] == 20.0
