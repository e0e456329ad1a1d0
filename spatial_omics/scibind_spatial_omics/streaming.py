"""Minibatches of an ``.h5ad`` matrix larger than memory: block-shuffled streaming (as scDataset does).

:class:`H5adBatches` yields ``(rows, float32[b, G])`` minibatches of an AnnData file:

- **fits the budget** (``memory_budget_mb``): the matrix is loaded once and each epoch is a uniform random
  permutation cut into batches (exactly i.i.d. batches without replacement);
- **larger than the budget**: the rows are cut into contiguous blocks of ``block_size``; each epoch visits
  the blocks in a random order, reads ``buffer_blocks`` blocks at a time (one contiguous read per block:
  a dense slice, or a CSR ``indptr`` range of ``data``/``indices``), shuffles the rows of that buffer and
  cuts it into batches.

Randomness of streamed batches: every row appears exactly once per epoch, but a batch draws its rows from
the ``buffer_blocks`` blocks of its buffer only, i.e. from ``buffer_blocks * block_size`` consecutive-in-file
rows (not from the whole file). Rows stored near each other (same sample, same cluster when the file is
sorted) are therefore over-represented together in a batch; raise ``buffer_blocks`` (memory) or lower
``block_size`` (more, smaller reads) to approach uniform shuffling. With ``block_size=1`` it is exact.

``run_rows = k > 1`` shuffles the buffer in runs of ``k`` consecutive rows instead of single rows: a batch
is then ``batch_size / k`` runs of (up to) ``k`` consecutive rows of the buffer, i.e. file-consecutive
rows of one block (a run that crosses a block boundary joins the ends of two blocks), the run boundaries
shifted by a random offset each buffer. Which blocks (samples, clusters) a batch draws from is unchanged in
expectation; neighbours within ``k`` rows of each other now travel together. It makes dense gathers
faster (longer contiguous copies: ≥ 10x anndata's backed indexing for dense files, where single rows are
7-10x); it is the default (``run_rows=8``), and ``run_rows=1`` shuffles single rows.

Dense ``X`` stored contiguously and uncompressed (anndata's default) is memory-mapped instead of read
through h5py: a batch is then gathered straight from the mapped file (one copy, no intermediate buffer),
with the same block-buffer order and randomness as above.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from scibind.errors import ConfigError

from scibind_spatial_omics.matrix import DEFAULT_MEMORY_BUDGET_MB, ExpressionMatrix

__all__ = ["H5adBatches", "run_permutation"]


def run_permutation(n_rows: int, run_rows: int, rng: np.random.Generator) -> np.ndarray:
    """A permutation of ``range(n_rows)`` that keeps runs of ``run_rows`` consecutive positions together.

    Run boundaries are shifted by a random offset in ``[0, run_rows)``, so the first and last runs may be
    shorter; runs come in a uniformly random order, positions inside a run in ascending order.

    Args:
        n_rows: Length of the permutation.
        run_rows: Run length (1 = a uniform permutation).
        rng: Random generator.
    """
    if run_rows <= 1 or n_rows <= 1:
        return rng.permutation(n_rows)
    shift = int(rng.integers(run_rows))
    starts = np.arange(shift, n_rows, run_rows)
    if shift:
        starts = np.concatenate([[0], starts])
    lengths = np.diff(np.append(starts, n_rows))
    order = rng.permutation(len(starts))
    lengths = lengths[order]
    offsets = np.repeat(starts[order] - (np.cumsum(lengths) - lengths), lengths)
    return offsets + np.arange(n_rows)


class H5adBatches:
    """Iterate shuffled minibatches of rows of an ``.h5ad`` (or 10x ``.h5``) matrix.

    Args:
        path: The file.
        batch_size: Rows per batch (the last batch of an epoch may be smaller unless ``drop_last``).
        block_size: Contiguous rows per read when streaming.
        buffer_blocks: Blocks shuffled together when streaming.
        run_rows: Rows kept together when a streamed buffer is shuffled (see the module notes).
        memory_budget_mb: Load the matrix whole below this size.
        seed: Seed; epoch ``e`` uses ``seed + e``.
        drop_last: Drop each epoch's incomplete last batch.
        use_raw: Read ``.raw``.
    """

    def __init__(
        self,
        path: str | Path,
        batch_size: int = 256,
        *,
        block_size: int = 1024,
        buffer_blocks: int = 8,
        run_rows: int = 8,
        memory_budget_mb: float = DEFAULT_MEMORY_BUDGET_MB,
        seed: int = 0,
        drop_last: bool = False,
        use_raw: bool = False,
    ) -> None:
        if min(batch_size, block_size, buffer_blocks, run_rows) < 1:
            raise ConfigError(
                f"batch_size, block_size, buffer_blocks and run_rows must be >= 1; got {batch_size}, "
                f"{block_size}, {buffer_blocks}, {run_rows}"
            )
        self.matrix = ExpressionMatrix.open(path, use_raw=use_raw, memory_budget_mb=memory_budget_mb)
        self.batch_size, self.block_size, self.buffer_blocks = batch_size, block_size, buffer_blocks
        self.run_rows, self.seed, self.drop_last = run_rows, seed, drop_last
        self._memmap = self._map_dense(Path(path)) if self.streaming else None

    def _map_dense(self, path: Path) -> np.ndarray | None:
        """A read-only memory map of a contiguous, uncompressed dense dataset (``None`` when it is not)."""
        node = self.matrix._dense
        if node is None or isinstance(node, np.ndarray) or node.chunks is not None or node.compression:
            return None
        try:
            offset = node.id.get_offset()
        except Exception:
            return None
        if offset is None or node.dtype.kind not in "fiu":
            return None
        return np.memmap(path, dtype=node.dtype, mode="r", offset=int(offset), shape=node.shape)

    @property
    def streaming(self) -> bool:
        """Whether rows are streamed from disk (the matrix did not fit the budget)."""
        return not self.matrix.in_memory

    def _cut(self, rows: np.ndarray, x: np.ndarray | None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for start in range(0, len(rows), self.batch_size):
            stop = start + self.batch_size
            if stop > len(rows) and self.drop_last:
                return
            sel = rows[start:stop]
            if x is None:
                yield sel, self._gather(sel)
            else:
                yield sel, x[start:stop]

    def _gather(self, rows: np.ndarray) -> np.ndarray:
        m = self.matrix
        if m._dense is not None:
            return m._dense[rows]
        out = np.zeros((len(rows), m.n_vars), dtype=np.float32)
        for k, i in enumerate(rows.tolist()):
            start, stop = m._indptr[i], m._indptr[i + 1]
            out[k, m._indices[start:stop]] = m._data[start:stop]
        return out

    def _read_buffer(self, chunks: list[tuple[int, int]]) -> Any:
        """Read contiguous blocks in one call each: a dense array, or a CSR matrix of the buffer."""
        import scipy.sparse as sp

        m = self.matrix
        total = sum(e - s for s, e in chunks)
        if self._memmap is not None:
            return _MappedBuffer(self._memmap, np.concatenate([np.arange(s, e) for s, e in chunks]))
        if m._dense is not None:
            buf = np.empty((total, m.n_vars), dtype=np.float32)
            offset = 0
            for s, e in chunks:
                m._dense.read_direct(buf, np.s_[s:e], np.s_[offset : offset + e - s])
                offset += e - s
            return buf
        data, indices, indptr = [], [], [np.zeros(1, dtype=np.int64)]
        nnz = 0
        for s, e in chunks:
            lo, hi = int(m._indptr[s]), int(m._indptr[e])
            data.append(np.asarray(m._data[lo:hi], dtype=np.float32))
            indices.append(np.asarray(m._indices[lo:hi]))
            indptr.append(m._indptr[s + 1 : e + 1] - lo + nnz)
            nnz += hi - lo
        return sp.csr_matrix(
            (np.concatenate(data), np.concatenate(indices), np.concatenate(indptr)), shape=(total, m.n_vars)
        )

    @staticmethod
    def _take(buf: Any, sel: np.ndarray) -> np.ndarray:
        out = buf[sel]
        return out.toarray() if hasattr(out, "toarray") else out

    def epoch(self, epoch: int = 0) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Batches of one epoch: ``(row positions int64[b], values float32[b, G])``."""
        rng = np.random.default_rng(self.seed + epoch)
        n = self.matrix.n_obs
        if not self.streaming:
            yield from self._cut(rng.permutation(n), None)
            return
        if self.matrix._present is not None:
            raise ConfigError(
                "streaming union panels (obsm['gene_present']) is not supported; load them in memory"
            )
        starts = np.arange(0, n, self.block_size)
        order = rng.permutation(len(starts))
        carry_rows = np.zeros(0, dtype=np.int64)
        carry_x = np.zeros((0, self.matrix.n_vars), dtype=np.float32)
        for b in range(0, len(order), self.buffer_blocks):
            chunks = [
                (int(starts[j]), min(int(starts[j]) + self.block_size, n))
                for j in order[b : b + self.buffer_blocks]
            ]
            rows = np.concatenate([np.arange(s, e) for s, e in chunks])
            buf = self._read_buffer(chunks)
            perm = run_permutation(len(rows), self.run_rows, rng)
            last = b + self.buffer_blocks >= len(order)
            first = self.batch_size - len(carry_rows)
            if len(carry_rows):
                sel = perm[:first]
                yield np.concatenate([carry_rows, rows[sel]]), np.concatenate([carry_x, self._take(buf, sel)])
                perm = perm[first:]
            whole = (len(perm) // self.batch_size) * self.batch_size
            for start in range(0, whole, self.batch_size):
                sel = perm[start : start + self.batch_size]
                yield rows[sel], self._take(buf, sel)
            rest = perm[whole:]
            carry_rows, carry_x = rows[rest], self._take(buf, rest)
            if last and len(rest) and not self.drop_last:
                yield carry_rows, carry_x

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        return self.epoch(0)


class _MappedBuffer:
    """Rows ``rows`` of a memory-mapped dense matrix; ``buf[sel]`` gathers ``rows[sel]`` as float32."""

    def __init__(self, mapped: np.ndarray, rows: np.ndarray) -> None:
        self.mapped, self.rows = mapped, rows

    def __getitem__(self, sel: np.ndarray) -> np.ndarray:
        return np.asarray(self.mapped[self.rows[sel]], dtype=np.float32)
