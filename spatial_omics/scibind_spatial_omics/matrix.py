"""Rows of an expression matrix stored in ``.h5ad`` (AnnData) or 10x ``.h5`` files, read with h5py.

One class, :class:`ExpressionMatrix`, opens either format (dense ``X`` or CSR/CSC-free CSR ``X``; the
10x ``matrix`` group is CSC over barcodes, i.e. CSR over cells) and serves rows by position or by name:

- when the matrix fits ``memory_budget_mb`` it is loaded whole once (random rows then cost microseconds);
- otherwise rows are read on demand from the open file (dense: one slice; CSR: one ``indptr`` range).

h5py is used directly instead of ``anndata.read_h5ad(backed="r")``: it is lighter to import and reads one
CSR row with two small slices instead of building an AnnData view.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scibind.errors import ReadError

__all__ = ["DEFAULT_MEMORY_BUDGET_MB", "ExpressionMatrix", "decode_strings", "read_index", "to_anndata"]

DEFAULT_MEMORY_BUDGET_MB = 1024.0
"""Matrices whose stored size (in memory, float32) is below this are loaded whole."""


def decode_strings(values: Any) -> list[str]:
    """Decode an h5py string/bytes array into ``list[str]``."""
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in np.asarray(values).tolist()]


def read_index(group: Any, path: Path) -> list[str]:
    """The index (obs or var names) of an AnnData dataframe group.

    Raises:
        ReadError: The group has no index column.
    """
    key = group.attrs.get("_index", "_index")
    if isinstance(key, bytes):
        key = key.decode("utf-8")
    if key not in group:
        raise ReadError(
            f"AnnData group {group.name!r} has no index column {key!r}; re-save the file with anndata >= 0.8",
            path=path,
        )
    return decode_strings(group[key][()])


def _column(group: Any, name: str) -> list[str] | None:
    """A string column of an AnnData dataframe group (plain or categorical), or ``None``."""
    if name not in group:
        return None
    node = group[name]
    if hasattr(node, "keys"):  # categorical: codes + categories
        categories = decode_strings(node["categories"][()])
        return [categories[c] if c >= 0 else "" for c in node["codes"][()].tolist()]
    return decode_strings(node[()])


@dataclass
class ExpressionMatrix:
    """An open expression matrix: ``n_obs`` rows (cells, spots) x ``n_vars`` genes.

    Build with :meth:`open`. Attributes are read once; rows through :meth:`row` / :meth:`rows`.

    Attributes:
        path: The file.
        obs_names: Row names (cell or spot barcodes).
        var_names: Gene names (symbols for 10x files and most h5ad files).
        gene_ids: Ensembl ids when the file stores them (``var['gene_ids']`` or the 10x ``features/id``),
            else ``None``.
        sparse: Whether the stored matrix is CSR.
        in_memory: Whether the whole matrix was loaded.
        provenance: ``uns['scibind']`` of files written by this plugin (panel harmonisation, normalisation),
            else ``{}``.
    """

    path: Path
    obs_names: list[str]
    var_names: list[str]
    gene_ids: list[str] | None
    sparse: bool
    in_memory: bool
    provenance: dict[str, Any] = field(default_factory=dict)
    _file: Any = None
    _data: Any = None
    _indices: Any = None
    _indptr: Any = None
    _dense: Any = None
    _present: Any = None
    _row_of: dict[str, int] = field(default_factory=dict)

    @classmethod
    def open(
        cls,
        path: str | Path,
        *,
        use_raw: bool = False,
        layer: str | None = None,
        memory_budget_mb: float = DEFAULT_MEMORY_BUDGET_MB,
    ) -> ExpressionMatrix:
        """Open an ``.h5ad`` or 10x ``.h5`` matrix.

        Args:
            path: The file.
            use_raw: Read ``raw/X`` (and ``raw/var``) of an h5ad instead of ``X``.
            layer: Read ``layers/<layer>`` of an h5ad instead of ``X``.
            memory_budget_mb: Load the matrix whole when its float32 size is below this.

        Raises:
            ReadError: The file is missing, not HDF5, or not an AnnData / 10x matrix.
        """
        import h5py

        path = Path(path)
        if not path.is_file():
            raise ReadError("file not found; check the path", path=path)
        try:
            handle = h5py.File(path, "r")
        except OSError as exc:
            raise ReadError(
                f"not an HDF5 file ({exc}); expected .h5ad or a 10x .h5 matrix", path=path
            ) from exc
        try:
            if "matrix" in handle and "barcodes" in handle["matrix"]:
                return cls._open_10x(path, handle, memory_budget_mb)
            return cls._open_h5ad(path, handle, use_raw, layer, memory_budget_mb)
        except ReadError:
            handle.close()
            raise
        except (KeyError, ValueError, TypeError) as exc:
            handle.close()
            raise ReadError(f"malformed expression matrix ({type(exc).__name__}: {exc})", path=path) from exc

    @classmethod
    def _open_10x(cls, path: Path, handle: Any, budget: float) -> ExpressionMatrix:
        group = handle["matrix"]
        features = group.get("features", group)
        names_key = "name" if "name" in features else "gene_names"
        ids_key = "id" if "id" in features else "genes"
        n_vars, n_obs = (int(v) for v in group["shape"][()])
        matrix = cls(
            path=path,
            obs_names=decode_strings(group["barcodes"][()]),
            var_names=decode_strings(features[names_key][()]),
            gene_ids=decode_strings(features[ids_key][()]) if ids_key in features else None,
            sparse=True,
            in_memory=False,
        )
        if len(matrix.obs_names) != n_obs or len(matrix.var_names) != n_vars:
            raise ReadError(
                f"matrix/shape says {n_vars} features x {n_obs} barcodes but the file lists "
                f"{len(matrix.var_names)} features and {len(matrix.obs_names)} barcodes",
                path=path,
            )
        # 10x stores features x barcodes in CSC, which is barcodes x features in CSR.
        matrix._bind_csr(group["data"], group["indices"], group["indptr"], budget)
        matrix._file = handle
        return matrix

    @classmethod
    def _open_h5ad(
        cls, path: Path, handle: Any, use_raw: bool, layer: str | None, budget: float
    ) -> ExpressionMatrix:
        if "obs" not in handle or "var" not in handle:
            raise ReadError("not an AnnData file: it has no 'obs' / 'var' groups", path=path)
        if not hasattr(handle["obs"], "keys"):
            handle.close()
            return cls._open_legacy(path, use_raw, layer)
        root = handle
        if use_raw:
            if "raw" not in handle:
                raise ReadError("use_raw=True but the file has no .raw; drop use_raw", path=path)
            root = handle["raw"]
        var = root["var"]
        if layer is not None:
            if "layers" not in handle or layer not in handle["layers"]:
                have = sorted(handle["layers"]) if "layers" in handle else []
                raise ReadError(f"no layer {layer!r}; layers in the file: {have}", path=path)
            node = handle["layers"][layer]
        else:
            if "X" not in root:
                raise ReadError("the AnnData file has no X matrix", path=path)
            node = root["X"]
        provenance: dict[str, Any] = {}
        if "uns" in handle and "scibind" in handle["uns"]:
            raw = handle["uns"]["scibind"][()]
            provenance = json.loads(raw.decode("utf-8") if isinstance(raw, bytes) else str(raw))
        matrix = cls(
            path=path,
            obs_names=read_index(handle["obs"], path),
            var_names=read_index(var, path),
            gene_ids=_column(var, "gene_ids"),
            sparse=hasattr(node, "keys"),
            in_memory=False,
            provenance=provenance,
        )
        if matrix.sparse:
            encoding = node.attrs.get("encoding-type", "csr_matrix")
            if isinstance(encoding, bytes):
                encoding = encoding.decode()
            if encoding != "csr_matrix":
                raise ReadError(
                    f"X is stored as {encoding}; rows need CSR. Convert once: adata.X = adata.X.tocsr(); "
                    "adata.write_h5ad(path)",
                    path=path,
                )
            matrix._bind_csr(node["data"], node["indices"], node["indptr"], budget)
        else:
            shape = node.shape
            if len(shape) != 2:
                raise ReadError(f"X has shape {shape}; expected 2-D cells x genes", path=path)
            if shape[0] * shape[1] * 4 / 2**20 <= budget:
                matrix._dense = np.asarray(node[()], dtype=np.float32)
                matrix.in_memory = True
            else:
                matrix._dense = node
        if "obsm" in handle and "gene_present" in handle["obsm"]:
            matrix._present = np.asarray(handle["obsm"]["gene_present"][()], dtype=bool)
        if matrix.n_obs != (matrix._dense.shape[0] if matrix._dense is not None else len(matrix._indptr) - 1):
            raise ReadError("obs names and X rows disagree in number", path=path)
        matrix._file = handle
        return matrix

    @classmethod
    def _open_legacy(cls, path: Path, use_raw: bool, layer: str | None) -> ExpressionMatrix:
        """Files of anndata < 0.7 (``obs`` a record array, ``raw.X``): read with anndata, in memory."""
        import anndata as ad
        import scipy.sparse as sp

        adata = ad.read_h5ad(path)
        if use_raw and adata.raw is None:
            raise ReadError("use_raw=True but the file has no .raw; drop use_raw", path=path)
        source = adata.raw if use_raw else adata
        x = adata.layers[layer] if layer is not None else source.X
        var = source.var
        matrix = cls(
            path=path,
            obs_names=[str(n) for n in adata.obs_names],
            var_names=[str(n) for n in source.var_names],
            gene_ids=[str(v) for v in var["gene_ids"]] if "gene_ids" in var else None,
            sparse=sp.issparse(x),
            in_memory=True,
        )
        if matrix.sparse:
            csr = sp.csr_matrix(x, dtype=np.float32)
            matrix._data, matrix._indices = csr.data, csr.indices.astype(np.int64)
            matrix._indptr = csr.indptr.astype(np.int64)
        else:
            matrix._dense = np.asarray(x, dtype=np.float32)
        return matrix

    def _bind_csr(self, data: Any, indices: Any, indptr: Any, budget: float) -> None:
        size_mb = (data.shape[0] * 8 + indptr.shape[0] * 8) / 2**20
        self._indptr = np.asarray(indptr[()], dtype=np.int64)
        if size_mb <= budget:
            self._data = np.asarray(data[()], dtype=np.float32)
            self._indices = np.asarray(indices[()], dtype=np.int64)
            self.in_memory = True
        else:
            self._data, self._indices = data, indices

    @property
    def n_obs(self) -> int:
        """Number of rows."""
        return len(self.obs_names)

    @property
    def n_vars(self) -> int:
        """Number of genes."""
        return len(self.var_names)

    def index_of(self, key: str) -> int:
        """Row position of an obs name, or of a ``#<n>`` position.

        Raises:
            ReadError: No such row.
        """
        if not self._row_of:
            self._row_of = {name: i for i, name in enumerate(self.obs_names)}
        if key in self._row_of:
            return self._row_of[key]
        if key.startswith("#") and key[1:].isdigit() and int(key[1:]) < self.n_obs:
            return int(key[1:])
        shown = ", ".join(self.obs_names[:3])
        raise ReadError(
            f"no row {key!r}; rows are named like {shown} ... ({self.n_obs} rows), or give '#<position>'",
            path=self.path,
            record=key,
        )

    def row(self, i: int) -> np.ndarray:
        """Row ``i`` as dense ``float32[n_vars]``; genes absent from the row's panel are NaN."""
        if self._dense is not None:
            out = np.asarray(self._dense[i], dtype=np.float32).copy()
        else:
            start, stop = int(self._indptr[i]), int(self._indptr[i + 1])
            out = np.zeros(self.n_vars, dtype=np.float32)
            out[np.asarray(self._indices[start:stop], dtype=np.int64)] = self._data[start:stop]
        if self._present is not None:
            out[~self._present[i]] = np.nan
        return out

    def rows(self, start: int, stop: int) -> np.ndarray:
        """Contiguous rows ``[start, stop)`` as dense ``float32[stop - start, n_vars]``, read in one call."""
        if self._dense is not None:
            out = np.asarray(self._dense[start:stop], dtype=np.float32)
        else:
            lo, hi = int(self._indptr[start]), int(self._indptr[stop])
            data = np.asarray(self._data[lo:hi], dtype=np.float32)
            indices = np.asarray(self._indices[lo:hi], dtype=np.int64)
            counts = np.diff(self._indptr[start : stop + 1])
            out = np.zeros((stop - start, self.n_vars), dtype=np.float32)
            out[np.repeat(np.arange(stop - start), counts), indices] = data
        if self._present is not None:
            out = out.copy()
            out[~self._present[start:stop]] = np.nan
        return out

    def close(self) -> None:
        """Close the file (rows of an in-memory matrix stay readable)."""
        if self._file is not None and self.in_memory:
            self._file.close()
            self._file = None


def to_anndata(matrix: ExpressionMatrix, rows: list[int] | None = None) -> Any:
    """The matrix (or some rows) as an in-memory AnnData with CSR ``X``; ``var['gene_ids']`` when known."""
    import anndata as ad
    import pandas as pd
    import scipy.sparse as sp

    rows = list(range(matrix.n_obs)) if rows is None else list(rows)
    if matrix.sparse:
        blocks = []
        for i in rows:
            start, stop = int(matrix._indptr[i]), int(matrix._indptr[i + 1])
            blocks.append((np.asarray(matrix._data[start:stop]), np.asarray(matrix._indices[start:stop])))
        indptr = np.concatenate([[0], np.cumsum([len(d) for d, _ in blocks])]).astype(np.int64)
        data = np.concatenate([d for d, _ in blocks]) if blocks else np.zeros(0, np.float32)
        indices = np.concatenate([j for _, j in blocks]) if blocks else np.zeros(0, np.int64)
        x = sp.csr_matrix((data.astype(np.float32), indices, indptr), shape=(len(rows), matrix.n_vars))
    else:
        x = sp.csr_matrix(np.stack([matrix.row(i) for i in rows]) if rows else np.zeros((0, matrix.n_vars)))
    var = pd.DataFrame(index=pd.Index(matrix.var_names))
    if matrix.gene_ids is not None:
        var["gene_ids"] = matrix.gene_ids
    adata = ad.AnnData(X=x, obs=pd.DataFrame(index=pd.Index([matrix.obs_names[i] for i in rows])), var=var)
    adata.var_names_make_unique()
    return adata
