"""Expression rows, gene panels and the row-reference parser."""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given
from hypothesis import strategies as st
from scibind.errors import DataError, ReadError
from scibind_spatial_omics.matrix import ExpressionMatrix
from scibind_spatial_omics.panels import harmonize
from scibind_spatial_omics.reader import ExpressionReader, split_row_ref
from scibind_spatial_omics.streaming import H5adBatches, run_permutation

from .conftest import write_h5ad

names = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=20)


@given(st.from_regex(r"[a-z_/]{1,12}", fullmatch=True), st.sampled_from([".h5ad", ".h5", ".H5AD"]), names)
def test_split_row_ref_round_trip(stem: str, suffix: str, row: str):
    assert split_row_ref(f"{stem}{suffix}#{row}") == (f"{stem}{suffix}", row)


def test_split_row_ref_needs_a_row():
    with pytest.raises(ReadError, match="expected"):
        split_row_ref("cells.csv#3")


def test_dense_csr_and_pbmc_rows(tmp_path: Path, spatial_dir: Path):
    x = np.random.default_rng(0).poisson(1.0, size=(20, 7)).astype(np.float32)
    write_h5ad(tmp_path / "dense.h5ad", x)
    write_h5ad(tmp_path / "csr.h5ad", sp.csr_matrix(x))
    for name in ("dense.h5ad", "csr.h5ad"):
        for budget in (1e6, 0.0):  # loaded whole, then read row by row from the file
            m = ExpressionMatrix.open(tmp_path / name, memory_budget_mb=budget)
            assert m.in_memory == (budget > 0)
            np.testing.assert_array_equal(m.row(13), x[13])
            np.testing.assert_array_equal(m.rows(3, 9), x[3:9])
    pbmc = spatial_dir / "singlecell/10x_pbmc68k_reduced.h5ad"
    reference = ad.read_h5ad(pbmc)
    reader = ExpressionReader(use_raw=True)
    cell = str(reference.obs_names[42])
    got = reader.read(f"{pbmc}#{cell}", record_id="c42").data.numpy()
    np.testing.assert_allclose(got, reference.raw.X[42].toarray().ravel())
    scaled = ExpressionReader().read(f"{pbmc}##42", record_id="c42").data.numpy()
    np.testing.assert_allclose(scaled, reference.X[42])


def test_reader_gene_order_and_missing_genes(small_h5ad: Path):
    sample = ExpressionReader(genes=["G3", "G0"]).read(f"{small_h5ad}#cell1", record_id="r")
    assert sample.data.tolist() == [8.0, 5.0]
    with pytest.raises(ReadError, match="expected genes"):
        ExpressionReader(genes=["G0", "NOPE"]).read(f"{small_h5ad}#cell1", record_id="r")
    with pytest.raises(ReadError, match="no row 'ghost'"):
        ExpressionReader().read(f"{small_h5ad}#ghost", record_id="r")


def _adata(x, genes, ids=None):
    a = ad.AnnData(X=np.asarray(x, dtype=np.float32))
    a.var_names = genes
    if ids is not None:
        a.var["gene_ids"] = ids
    return a


def test_union_and_intersection_with_id_mapping(tmp_path: Path):
    a = _adata(
        [[1, 2, 3]], ["CD3E", "MS4A1", "LYZ"], ["ENSG00000000001", "ENSG00000000002", "ENSG00000000003"]
    )
    b = _adata([[4, 5]], ["ENSG00000000002", "ENSG00000000004"])  # Ensembl ids only, one gene unknown to a
    union = harmonize({"a": a, "b": b}, panel="union", id_type="symbol", normalize=False)
    # b's ENSG...02 maps to MS4A1 through a; ENSG...04 has no symbol and is dropped in symbol space.
    assert list(union.var_names) == ["CD3E", "MS4A1", "LYZ"]
    assert union.X.toarray().tolist() == [[1, 2, 3], [0, 4, 0]]
    assert union.obsm["gene_present"].tolist() == [[True, True, True], [False, True, False]]
    ens = harmonize({"a": a, "b": b}, panel="union", id_type="ensembl", normalize=False)
    assert list(ens.var_names) == ["ENSG00000000001", "ENSG00000000002", "ENSG00000000003", "ENSG00000000004"]
    inter = harmonize({"a": a, "b": b}, panel="intersection", id_type="ensembl", normalize=False)
    assert list(inter.var_names) == ["ENSG00000000002"] and inter.X.toarray().ravel().tolist() == [2, 4]
    path = tmp_path / "u.h5ad"
    union.write_h5ad(path)
    row = ExpressionReader().read(f"{path}##1", record_id="b0").data.numpy()
    assert np.isnan(row[0]) and row[1] == 4 and np.isnan(row[2])
    with pytest.raises(DataError, match="share no gene"):
        harmonize({"a": _adata([[1]], ["X"]), "b": _adata([[1]], ["Y"])})


def test_normalize_and_hvgs_are_recorded():
    rng = np.random.default_rng(0)
    a = _adata(rng.poisson(2, size=(30, 40)), [f"G{i}" for i in range(40)])
    b = _adata(rng.poisson(3, size=(25, 40)), [f"G{i}" for i in range(40)])
    out = harmonize({"a": a, "b": b}, n_hvg=10, subset_hvg=True)
    assert out.n_vars == 10
    record = __import__("json").loads(out.uns["scibind"])
    assert record["hvg"]["n_top_genes"] == 10 and record["hvg"]["by_batch"] is True
    np.testing.assert_allclose(np.expm1(harmonize({"a": a}).X.toarray()).sum(1), 1e4, rtol=1e-4)


@pytest.mark.parametrize("sparse", [False, True])
def test_streamed_epoch_visits_every_row_once(tmp_path: Path, sparse: bool):
    x = np.random.default_rng(1).poisson(0.5, size=(1000, 6)).astype(np.float32)
    write_h5ad(tmp_path / "m.h5ad", sp.csr_matrix(x) if sparse else x)
    batches = H5adBatches(tmp_path / "m.h5ad", 64, block_size=50, buffer_blocks=3, memory_budget_mb=0)
    assert batches.streaming
    assert (batches._memmap is not None) == (not sparse)  # contiguous dense X is memory-mapped
    seen = []
    for rows, values in batches.epoch(0):
        np.testing.assert_array_equal(values, x[rows])
        seen.append(rows)
    sizes = [len(r) for r in seen]
    assert sizes[:-1] == [64] * (len(sizes) - 1)
    order = np.concatenate(seen)
    assert sorted(order.tolist()) == list(range(1000))
    assert order.tolist() != list(range(1000))  # shuffled
    first = np.concatenate([r for r, _ in batches.epoch(1)])
    assert first.tolist() != order.tolist()  # a new order each epoch


@given(st.integers(0, 300), st.integers(1, 40), st.integers(0, 2**32 - 1))
def test_run_permutation_keeps_runs_of_consecutive_rows(n_rows: int, run_rows: int, seed: int):
    perm = run_permutation(n_rows, run_rows, np.random.default_rng(seed))
    assert sorted(perm.tolist()) == list(range(n_rows))

    def grouped(shift: int) -> bool:
        run = (perm + run_rows - shift) // run_rows  # run of each position for this boundary offset
        changes = np.flatnonzero(np.diff(run) != 0)
        ascending = bool(np.all(np.diff(perm)[np.diff(run) == 0] == 1))
        return ascending and len(changes) + 1 == len(set(run.tolist()))  # each run in one stretch

    assert n_rows == 0 or any(grouped(shift) for shift in range(run_rows))


def test_run_permutation_shuffles_runs_uniformly():
    rng = np.random.default_rng(0)
    first = np.array([run_permutation(64, 8, rng)[0] for _ in range(4000)])
    starts = np.bincount(first // 8, minlength=8) / len(first)
    # offset 0 (p = 1/8): 8 runs of 8; other offsets: 9 runs, the short head run also counting in bin 0
    expected = np.full(8, 1 / 8 * 1 / 8 + 7 / 8 * 1 / 9)
    expected[0] = 1 / 8 * 1 / 8 + 7 / 8 * 2 / 9
    np.testing.assert_allclose(starts, expected, atol=0.02)  # every run equally likely to come first
    assert len(set(first.tolist())) > 8  # and run boundaries move (random offset)


def test_streamed_runs_are_contiguous_rows(tmp_path: Path):
    x = np.random.default_rng(2).random((1000, 5), dtype=np.float32)
    write_h5ad(tmp_path / "m.h5ad", x)
    batches = H5adBatches(
        tmp_path / "m.h5ad", 64, block_size=100, buffer_blocks=3, run_rows=8, memory_budget_mb=0
    )
    seen = []
    for rows, values in batches.epoch(0):
        np.testing.assert_array_equal(values, x[rows])
        seen.append(rows)
    order = np.concatenate(seen)
    assert sorted(order.tolist()) == list(range(1000))
    steps = np.diff(order)
    assert 0.6 < float(np.mean(steps == 1)) < 7 / 8 + 0.01  # runs of <= 8 consecutive rows
    single = np.concatenate(
        [r for r, _ in H5adBatches(tmp_path / "m.h5ad", 64, run_rows=1, memory_budget_mb=0)]
    )
    default = np.concatenate([r for r, _ in H5adBatches(tmp_path / "m.h5ad", 64, memory_budget_mb=0)])
    assert 0.6 < float(np.mean(np.diff(default) == 1)) < 7 / 8 + 0.01  # runs of 8 by default
    assert float(np.mean(np.diff(single) == 1)) < 0.05
