"""Embedding stores on disk: ids + view + vectors + metadata, as Parquet (default) or Zarr.

**Parquet** (any path not ending in ``.zarr``): one row per ``(id, view)`` with columns ``id`` (string),
``view`` (string), ``vector`` (``fixed_size_list<float32>[D]``) and one column per metadata field. The
schema metadata key ``scibind`` holds ``{"format": 1, "views": {view: {"dim": D, "metadata": [...]}}}`` so
each view gets back exactly its own metadata columns. Every view in one Parquet file has the same width.

**Zarr** (path ending in ``.zarr``; needs ``zarr>=3``): a group with one sub-group per view holding arrays
``ids`` (string), ``vectors`` (``float32[N, D]``) and ``meta/<field>``; views may differ in width.

Writes are atomic: the whole store is written next to the target and moved into place with ``os.replace``
after an ``fsync``, so a killed process leaves either the old store or the new one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from scibind.atomic import atomic_replace
from scibind.errors import DataError, MissingDependencyError, ShapeError

__all__ = ["EmbeddingStore", "ViewEmbeddings"]

FORMAT_VERSION = 1
RESERVED = ("id", "view", "vector")


@dataclass
class ViewEmbeddings:
    """One view's vectors in a store.

    Attributes:
        ids: Record ids, length ``N``.
        vectors: ``float32[N, D]``.
        metadata: ``N`` rows of metadata (label columns, group, split, ...), indexed ``0..N-1``.
    """

    ids: list[str]
    vectors: np.ndarray
    metadata: pd.DataFrame

    def __post_init__(self) -> None:
        self.vectors = np.ascontiguousarray(self.vectors, dtype=np.float32)
        if self.vectors.ndim != 2 or self.vectors.shape[0] != len(self.ids):
            raise ShapeError(f"vectors have shape {self.vectors.shape}; expected [{len(self.ids)}, D]")
        if len(self.metadata) != len(self.ids):
            raise ShapeError(f"metadata has {len(self.metadata)} rows for {len(self.ids)} ids")
        self.metadata = self.metadata.reset_index(drop=True)


class EmbeddingStore:
    """Vectors of one or more views, keyed by record id.

    Build one in memory (``EmbeddingStore()`` then :meth:`add`), or use :meth:`write` to add a view to the
    store at a path (creating it, or keeping its other views) and :meth:`read` to load one.
    """

    def __init__(
        self, views: Mapping[str, ViewEmbeddings] | None = None, path: str | Path | None = None
    ) -> None:
        self._views: dict[str, ViewEmbeddings] = dict(views or {})
        self.path = None if path is None else Path(path)

    @property
    def views(self) -> list[str]:
        """View names, in insertion order."""
        return list(self._views)

    def __len__(self) -> int:
        """Number of ``(id, view)`` rows."""
        return sum(len(v.ids) for v in self._views.values())

    def __contains__(self, view: object) -> bool:
        return view in self._views

    def __getitem__(self, view: str) -> ViewEmbeddings:
        """The vectors of ``view``.

        Raises:
            DataError: The store has no such view; the message lists the views it has.
        """
        try:
            return self._views[view]
        except KeyError:
            where = f" {self.path}" if self.path else ""
            raise DataError(f"embedding store{where} has no view {view!r}; it has {self.views}") from None

    def add(
        self,
        ids: Sequence[str],
        view: str,
        vectors: Any,
        metadata: Mapping[str, Sequence[Any]] | pd.DataFrame | None = None,
    ) -> EmbeddingStore:
        """Add (or replace) the vectors of ``view``; returns ``self``.

        Args:
            ids: Record ids, unique within the view.
            view: View name.
            vectors: ``[N, D]`` array or tensor.
            metadata: Field -> ``N`` values (or a DataFrame); names ``id``, ``view``, ``vector`` are reserved.

        Raises:
            ShapeError: Lengths do not match.
            DataError: Duplicate ids or a reserved metadata name.
        """
        ids = [str(i) for i in ids]
        if len(set(ids)) != len(ids):
            dupes = sorted({i for i in ids if ids.count(i) > 1})[:5]
            raise DataError(f"view {view!r}: duplicate ids in the embedding store, e.g. {dupes}")
        if metadata is None:
            frame = pd.DataFrame(index=range(len(ids)))
        elif isinstance(metadata, pd.DataFrame):
            frame = metadata.reset_index(drop=True)
        else:
            lengths = {str(k): len(v) for k, v in metadata.items() if len(v) != len(ids)}
            if lengths:
                raise ShapeError(
                    f"view {view!r}: metadata fields {lengths} do not have one value per id ({len(ids)})"
                )
            frame = pd.DataFrame({str(k): list(v) for k, v in metadata.items()}, index=range(len(ids)))
        bad = [c for c in frame.columns if c in RESERVED]
        if bad:
            raise DataError(f"view {view!r}: metadata fields {bad} are reserved; rename them")
        self._views[str(view)] = ViewEmbeddings(ids, _to_numpy(vectors), frame)
        return self

    def to_anndata(self, view: str) -> Any:
        """Export ``view`` as an :class:`anndata.AnnData` (one observation per record).

        Ids become ``obs_names``, vectors ``.obsm["X_scibind"]`` and the metadata ``.obs`` (text columns as
        categoricals, as scanpy expects); ``X`` is empty (``n_vars = 0``).

        Raises:
            MissingDependencyError: anndata is not installed.
        """
        try:
            import anndata
        except ImportError as exc:
            raise MissingDependencyError("exporting to AnnData needs anndata; pip install anndata") from exc
        data = self[view]
        obs = data.metadata.copy()
        obs.index = pd.Index(data.ids, name="id")
        obs = obs.astype({c: "category" for c in obs.columns if obs[c].dtype == object})
        return anndata.AnnData(obs=obs, obsm={"X_scibind": data.vectors.copy()})

    def save(self, path: str | Path) -> Path:
        """Write every view to ``path`` atomically (Zarr when it ends in ``.zarr``, else Parquet)."""
        path = Path(path)
        writer = _write_zarr if path.suffix == ".zarr" else _write_parquet
        atomic_replace(path, lambda tmp: writer(self, tmp))
        self.path = path
        return path

    @classmethod
    def write(
        cls,
        path: str | Path,
        ids: Sequence[str],
        view: str,
        vectors: Any,
        metadata: Mapping[str, Sequence[Any]] | pd.DataFrame | None = None,
    ) -> EmbeddingStore:
        """Add ``view`` to the store at ``path`` (kept views stay; the same view is replaced) and save it.

        Args:
            path: ``*.parquet`` (or any other name) for Parquet, ``*.zarr`` for Zarr.
            ids: Record ids.
            view: View name.
            vectors: ``[N, D]`` array or tensor.
            metadata: Field -> ``N`` values.

        Returns:
            The store as now on disk.
        """
        store = cls.read(path) if Path(path).exists() else cls()
        store.add(ids, view, vectors, metadata)
        store.save(path)
        return store

    @classmethod
    def read(cls, path: str | Path) -> EmbeddingStore:
        """Load the store at ``path``.

        Raises:
            DataError: The path does not exist or is not a scibind embedding store.
        """
        path = Path(path)
        if not path.exists():
            raise DataError(f"embedding store {path} does not exist; create it with `scibind embed`")
        views = _read_zarr(path) if path.suffix == ".zarr" else _read_parquet(path)
        return cls(views, path=path)


def _to_numpy(vectors: Any) -> np.ndarray:
    if hasattr(vectors, "detach"):
        vectors = vectors.detach().cpu().float().numpy()
    return np.asarray(vectors, dtype=np.float32)


def _write_parquet(store: EmbeddingStore, path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    dims = {v: store[v].vectors.shape[1] for v in store.views}
    if len(set(dims.values())) > 1:
        raise ShapeError(
            f"{path.name}: views have different widths {dims}; a Parquet store holds one width, "
            "so write them to separate files or use a .zarr store"
        )
    dim = next(iter(dims.values()), 0)
    frames = []
    for view in store.views:
        data = store[view]
        frame = data.metadata.copy()
        frame.insert(0, "view", view)
        frame.insert(0, "id", data.ids)
        frames.append(frame)
    table_frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame({"id": [], "view": []})
    vectors = (
        np.concatenate([store[v].vectors for v in store.views])
        if frames
        else np.zeros((0, dim), dtype=np.float32)
    )
    table = pa.Table.from_pandas(table_frame, preserve_index=False)
    flat = pa.array(vectors.reshape(-1), type=pa.float32())
    table = table.add_column(2, "vector", pa.FixedSizeListArray.from_arrays(flat, dim))
    info = {
        "format": FORMAT_VERSION,
        "views": {
            v: {"dim": dims[v], "metadata": [str(c) for c in store[v].metadata.columns]} for v in store.views
        },
    }
    table = table.replace_schema_metadata({b"scibind": json.dumps(info).encode()})
    pq.write_table(table, path)


def _read_parquet(path: Path) -> dict[str, ViewEmbeddings]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:
        raise DataError(f"{path}: cannot be read as Parquet ({exc}); is it an embedding store?") from exc
    raw = (table.schema.metadata or {}).get(b"scibind")
    if raw is None or "vector" not in table.column_names:
        raise DataError(
            f"{path}: not a scibind embedding store (no 'scibind' schema metadata or 'vector' column)"
        )
    info = json.loads(raw)
    column = table.column("vector").combine_chunks()
    dim = column.type.list_size
    vectors = column.flatten().to_numpy(zero_copy_only=False).astype(np.float32).reshape(-1, dim)
    frame = table.drop_columns(["vector"]).to_pandas()
    views = {}
    for view, spec in info["views"].items():
        rows = np.flatnonzero((frame["view"] == view).to_numpy())
        meta = frame.iloc[rows][list(spec["metadata"])].reset_index(drop=True)
        views[view] = ViewEmbeddings(frame["id"].iloc[rows].astype(str).tolist(), vectors[rows], meta)
    return views


def _zarr() -> Any:
    try:
        import zarr
    except ImportError as exc:
        raise MissingDependencyError(
            "Zarr embedding stores need zarr>=3; pip install 'zarr>=3' (or write a .parquet store)"
        ) from exc
    if not hasattr(zarr, "create_array"):
        raise MissingDependencyError(
            f"Zarr embedding stores need zarr>=3, found {zarr.__version__}; pip install -U 'zarr>=3'"
        )
    return zarr


def _write_zarr(store: EmbeddingStore, path: Path) -> None:
    zarr = _zarr()
    root = zarr.open_group(str(path), mode="w")
    root.attrs["scibind"] = {"format": FORMAT_VERSION, "views": store.views}
    for i, view in enumerate(store.views):
        data = store[view]
        group = root.create_group(f"v{i}")
        group.attrs["view"] = view
        group.attrs["metadata"] = [str(c) for c in data.metadata.columns]
        group.create_array("ids", shape=(len(data.ids),), dtype=str)[:] = np.array(data.ids, dtype=str)
        group.create_array("vectors", data=data.vectors)
        meta = group.create_group("meta")
        for j, name in enumerate(data.metadata.columns):
            values = data.metadata[name]
            missing = values.isna().to_numpy()
            if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
                meta.create_array(f"f{j}", data=values.to_numpy(dtype=np.float64, na_value=np.nan))
            else:
                arr = meta.create_array(f"f{j}", shape=(len(values),), dtype=str)
                arr[:] = np.array(
                    ["" if m else str(v) for v, m in zip(values, missing, strict=True)], dtype=str
                )
                meta.create_array(f"f{j}_missing", data=missing)


def _read_zarr(path: Path) -> dict[str, ViewEmbeddings]:
    zarr = _zarr()
    try:
        root = zarr.open_group(str(path), mode="r")
        info = root.attrs["scibind"]
    except Exception as exc:
        raise DataError(f"{path}: not a scibind embedding store ({exc})") from exc
    views = {}
    for i, view in enumerate(info["views"]):
        group = root[f"v{i}"]
        meta_group = group["meta"]
        columns: dict[str, Any] = {}
        for j, name in enumerate(group.attrs["metadata"]):
            values = np.asarray(meta_group[f"f{j}"][:])
            if f"f{j}_missing" in meta_group:
                missing = np.asarray(meta_group[f"f{j}_missing"][:])
                values = np.array(
                    [None if m else str(v) for v, m in zip(values, missing, strict=True)], dtype=object
                )
            columns[name] = values
        ids = [str(x) for x in np.asarray(group["ids"][:])]
        views[view] = ViewEmbeddings(
            ids, np.asarray(group["vectors"][:]), pd.DataFrame(columns, index=range(len(ids)))
        )
    return views
