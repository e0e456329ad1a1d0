"""Manifests: one table row per paired record, loaded from CSV, TSV, Parquet or JSONL.

Column roles:

- ``id`` (required): the record id, read as a string; ids must be unique.
- ``split`` and ``group`` (optional, reserved): the record's split (``train``/``eval``/...) and its group
  (patient, donor, plate, scaffold). Splits never put one group in two splits.
- view columns: ``<view>`` holds one value per record (a path relative to the manifest's folder, or an inline
  value); ``<view>.<field>`` columns together give a ``{field: value}`` dict per record.
- every other column is a label column.

A missing value (empty cell, ``NaN``, ``null``/``None``, whitespace-only text) means the view is absent for
that record; a ``<view>.<field>`` view is absent when all its fields are missing.
"""

from __future__ import annotations

import gzip
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from scibind.errors import DataError, ReadError

__all__ = ["RESERVED_COLUMNS", "Manifest", "ManifestSchema", "is_missing", "read_manifest"]

RESERVED_COLUMNS: tuple[str, ...] = ("id", "split", "group")
SUFFIXES: dict[str, str] = {
    ".csv": "csv",
    ".csv.gz": "csv",
    ".tsv": "tsv",
    ".tsv.gz": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".jsonl.gz": "jsonl",
}


class ManifestSchema(BaseModel):
    """The column roles of a manifest: which views it binds and which columns are labels.

    Attributes:
        views: View names (a view is the column ``<view>`` or the column group ``<view>.<field>``).
        labels: Label columns (every column that is neither reserved nor part of a view).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    views: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()

    @field_validator("views")
    @classmethod
    def _check_views(cls, views: tuple[str, ...]) -> tuple[str, ...]:
        for view in views:
            if not view or "." in view or view != view.strip():
                raise ValueError(
                    f"view name {view!r} must be a non-empty column name without '.' or surrounding spaces"
                )
            if view in RESERVED_COLUMNS:
                raise ValueError(f"view name {view!r} is a reserved column ({', '.join(RESERVED_COLUMNS)})")
        if len(set(views)) != len(views):
            raise ValueError(f"views are listed twice: {sorted({v for v in views if views.count(v) > 1})}")
        return views


def is_missing(value: Any) -> bool:
    """Whether a manifest cell means "absent": ``None``, ``NaN``, ``pd.NA`` or whitespace-only text.

    Lists and arrays (inline vectors) are never missing as a whole.
    """
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, (float, np.floating)):
        return math.isnan(value)
    return False


def _view_columns(columns: Sequence[str], view: str) -> list[str]:
    """The manifest columns that make up ``view``: ``[view]`` or the ``view.<field>`` columns."""
    if view in columns:
        return [view]
    return [c for c in columns if c.startswith(f"{view}.") and len(c) > len(view) + 1]


@dataclass
class Manifest:
    """A loaded manifest.

    Attributes:
        path: The file it was read from (``None`` for one built in memory).
        base_dir: Folder that relative paths in view columns resolve against.
        frame: One row per record (a ``RangeIndex``); ``id`` holds strings.
        views: The views bound by the caller (empty when :func:`read_manifest` got no ``views``).
        label_columns: Columns that are neither reserved nor part of a view.
        source_frame: The whole manifest before any :meth:`select`; label vocabularies are built from it so
            train and eval subsets of one file share codes.
    """

    path: Path | None
    base_dir: Path
    frame: pd.DataFrame
    views: tuple[str, ...] = ()
    label_columns: tuple[str, ...] = ()
    source_frame: pd.DataFrame = field(default=None, repr=False)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.source_frame is None:
            self.source_frame = self.frame

    def __len__(self) -> int:
        return len(self.frame)

    @property
    def name(self) -> str:
        """The manifest's file path as text (``"<memory>"`` when built in memory), for messages."""
        return str(self.path) if self.path is not None else "<memory>"

    @property
    def ids(self) -> list[str]:
        """Record ids in row order."""
        return self.frame["id"].tolist()

    @classmethod
    def from_frame(
        cls,
        frame: pd.DataFrame,
        *,
        base_dir: str | Path = ".",
        path: str | Path | None = None,
        views: Sequence[str] | None = None,
    ) -> Manifest:
        """Build a manifest from an in-memory table (validated exactly like a file).

        Args:
            frame: One row per record with an ``id`` column.
            base_dir: Folder relative paths resolve against.
            path: The file the frame came from, for messages.
            views: Views to bind and validate (see :func:`read_manifest`).

        Raises:
            DataError: No ``id`` column, missing or duplicate ids, unknown views, a group in two splits.
        """
        path = None if path is None else Path(path)
        where = str(path) if path is not None else "<memory>"
        return _build(
            frame,
            path=path,
            base_dir=Path(base_dir),
            views=views,
            row_label=_row_label_for(None),
            where=where,
        )

    def with_views(self, views: Sequence[str]) -> Manifest:
        """The same records with ``views`` bound (validated); label columns exclude the view columns.

        Raises:
            DataError: A view has no column; the message lists the available columns.
        """
        schema = _schema(self.frame, views, self.name)
        return Manifest(self.path, self.base_dir, self.frame, schema.views, schema.labels, self.source_frame)

    def columns_of(self, view: str) -> list[str]:
        """The columns of ``view``: ``[view]`` or its ``view.<field>`` columns (empty when it has none)."""
        return _view_columns(list(self.frame.columns), view)

    def view_values(self, view: str) -> list[Any]:
        """Per record, the value of ``view``: the cell, a ``{field: value}`` dict, or ``None`` when absent.

        Inside a ``{field: value}`` dict a missing field is ``None``; the view is absent only when every
        field is missing.

        Raises:
            DataError: ``view`` has no column in this manifest.
        """
        columns = self.columns_of(view)
        if not columns:
            raise DataError(_missing_view_message(self.name, [view], list(self.frame.columns)))
        if columns == [view]:
            return [None if is_missing(v) else v for v in self.frame[view].tolist()]
        fields = [c[len(view) + 1 :] for c in columns]
        out: list[Any] = []
        for row in zip(*(self.frame[c].tolist() for c in columns), strict=True):
            value = {f: (None if is_missing(v) else v) for f, v in zip(fields, row, strict=True)}
            out.append(None if all(v is None for v in value.values()) else value)
        return out

    def present(self, view: str) -> np.ndarray:
        """``bool[n]``: whether ``view`` is present for each record."""
        return np.array([v is not None for v in self.view_values(view)], dtype=bool)

    @property
    def splits(self) -> list[str]:
        """The distinct values of the ``split`` column, sorted (empty without one)."""
        if "split" not in self.frame.columns:
            return []
        return sorted({str(s) for s in self.frame["split"].tolist() if not is_missing(s)})

    def select(self, split: str | Sequence[str]) -> Manifest:
        """The records whose ``split`` is ``split`` (or one of several), in file order.

        Raises:
            DataError: The manifest has no ``split`` column, or no record is in the requested split(s).
        """
        wanted = [split] if isinstance(split, str) else list(split)
        if "split" not in self.frame.columns:
            raise DataError(
                f"{self.name}: cannot select split {wanted}: the manifest has no 'split' column; add one, or "
                "create it with scibind.data.splits.assign_splits"
            )
        wanted_set = set(wanted)
        mask = np.array(
            [not is_missing(s) and str(s) in wanted_set for s in self.frame["split"].tolist()], dtype=bool
        )
        if not mask.any():
            raise DataError(
                f"{self.name}: no record has split {' or '.join(repr(s) for s in wanted)}; "
                f"the manifest's splits are {self.splits}"
            )
        frame = self.frame.loc[mask].reset_index(drop=True)
        return Manifest(self.path, self.base_dir, frame, self.views, self.label_columns, self.source_frame)


def read_manifest(path: str | Path, *, views: Sequence[str] | None = None) -> Manifest:
    """Load a manifest from CSV, TSV, Parquet or JSONL (chosen by suffix; ``.gz`` text files too).

    Args:
        path: The manifest file. Relative paths inside it resolve against its folder.
        views: The views the caller binds (from the recipe). When given, each must have a ``<view>`` or
            ``<view>.<field>`` column. When ``None``, :attr:`Manifest.views` is empty, every non-reserved
            column is a label column, and callers bind views later with :meth:`Manifest.with_views`.

    Returns:
        The validated :class:`Manifest`.

    Raises:
        ReadError: The file is missing, has an unsupported suffix, or cannot be parsed.
        DataError: No ``id`` column, missing or duplicate ids, unknown views, or a group in two splits.
    """
    path = Path(path)
    fmt = _format_of(path)
    if not path.is_file():
        raise ReadError(
            "manifest file not found; check the path (relative paths start at the current folder)", path=path
        )
    frame = _READERS[fmt](path)
    return _build(
        frame,
        path=path,
        base_dir=path.resolve().parent,
        views=views,
        row_label=_row_label_for(fmt),
        where=str(path),
    )


def _format_of(path: Path) -> str:
    name = path.name.lower()
    for suffix in sorted(SUFFIXES, key=len, reverse=True):
        if name.endswith(suffix):
            return SUFFIXES[suffix]
    raise ReadError(
        f"unsupported manifest format; use one of {', '.join(SUFFIXES)} (the suffix picks the format)",
        path=path,
    )


def _read_delimited(path: Path, sep: str) -> pd.DataFrame:
    try:
        # Every cell is read as text: labels stay the strings the user wrote ("01" is not 1), and readers
        # parse inline values (JSON arrays) themselves. Empty cells become NaN, i.e. missing.
        return pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, na_values=[""])
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as exc:
        raise ReadError(
            f"cannot parse the table ({type(exc).__name__}: {exc}); check the delimiter and quoting",
            path=path,
        ) from exc


def _read_csv(path: Path) -> pd.DataFrame:
    return _read_delimited(path, ",")


def _read_tsv(path: Path) -> pd.DataFrame:
    return _read_delimited(path, "\t")


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several unrelated exception types for corrupt files
        raise ReadError(f"cannot read Parquet ({type(exc).__name__}: {exc})", path=path) from exc


def _read_jsonl(path: Path) -> pd.DataFrame:
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    records: list[dict[str, Any]] = []
    try:
        with opener(path, "rt", encoding="utf-8") as handle:
            for line_no, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ReadError(
                        f"line {line_no} is not valid JSON ({exc.msg}); each line must be one JSON object",
                        path=path,
                    ) from exc
                if not isinstance(record, dict):
                    raise ReadError(
                        f"line {line_no} is a JSON {type(record).__name__}, not an object", path=path
                    )
                record["\0line"] = line_no
                records.append(record)
    except (OSError, UnicodeDecodeError) as exc:
        raise ReadError(f"cannot read JSONL ({type(exc).__name__}: {exc})", path=path) from exc
    frame = pd.DataFrame.from_records(records)
    if frame.empty:
        return frame
    frame.attrs["lines"] = frame.pop("\0line").tolist()
    return frame


_READERS: dict[str, Callable[[Path], pd.DataFrame]] = {
    "csv": _read_csv,
    "tsv": _read_tsv,
    "parquet": _read_parquet,
    "jsonl": _read_jsonl,
}


def _row_label_for(fmt: str | None) -> Callable[[pd.DataFrame, int], str]:
    """How messages name the 0-based data row ``i``: file line for text tables, row number otherwise."""

    def label(frame: pd.DataFrame, i: int) -> str:
        if fmt in ("csv", "tsv"):
            return f"data row {i + 1} (line {i + 2} of the file, counting the header as line 1)"
        if fmt == "jsonl" and "lines" in frame.attrs:
            return f"data row {i + 1} (line {frame.attrs['lines'][i]} of the file)"
        return f"data row {i + 1}"

    return label


def _id_text(value: Any) -> str:
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _build(
    frame: pd.DataFrame,
    *,
    path: Path | None,
    base_dir: Path,
    views: Sequence[str] | None,
    row_label: Callable[[pd.DataFrame, int], str],
    where: str,
) -> Manifest:
    if "id" not in frame.columns:
        raise DataError(
            f"{where}: the manifest has no 'id' column; add one with a unique id per record "
            f"(columns found: {', '.join(map(str, frame.columns)) or 'none'})"
        )
    bad_columns = [c for c in frame.columns if not isinstance(c, str)]
    if bad_columns:
        raise DataError(f"{where}: column names must be strings, got {bad_columns}")
    frame = frame.reset_index(drop=True).copy()
    raw_ids = frame["id"].tolist()
    missing = [i for i, v in enumerate(raw_ids) if is_missing(v)]
    if missing:
        rows = "; ".join(row_label(frame, i) for i in missing[:5])
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise DataError(
            f"{where}: {len(missing)} record(s) have no id: {rows}{more}; every record needs an id"
        )
    ids = [_id_text(v).strip() for v in raw_ids]
    _check_unique(ids, frame, row_label, where)
    frame["id"] = pd.Series(ids, dtype=object)
    frame.attrs.pop("lines", None)
    schema = _schema(frame, views or (), where)
    manifest = Manifest(path, base_dir, frame, schema.views, schema.labels)
    from scibind.data.splits import check_manifest_splits

    check_manifest_splits(manifest)
    return manifest


def _check_unique(
    ids: list[str], frame: pd.DataFrame, row_label: Callable[[pd.DataFrame, int], str], where: str
) -> None:
    positions: dict[str, list[int]] = {}
    for i, record_id in enumerate(ids):
        positions.setdefault(record_id, []).append(i)
    duplicated = {k: v for k, v in positions.items() if len(v) > 1}
    if not duplicated:
        return
    parts = []
    for record_id, rows in list(duplicated.items())[:5]:
        parts.append(f"{record_id!r} at " + ", ".join(row_label(frame, i) for i in rows))
    more = f" (and {len(duplicated) - 5} more duplicated ids)" if len(duplicated) > 5 else ""
    raise DataError(
        f"{where}: duplicate ids: {'; '.join(parts)}{more}; ids must be unique, one row per record"
    )


def _missing_view_message(where: str, missing: Sequence[str], columns: Sequence[str]) -> str:
    expected = ", ".join(f"'{v}' or '{v}.<field>'" for v in missing)
    return (
        f"{where}: no column for view(s) {', '.join(repr(v) for v in missing)} (expected {expected}); "
        f"available columns: {', '.join(columns)}. Rename the column or change the view names in the recipe"
    )


def _schema(frame: pd.DataFrame, views: Sequence[str], where: str) -> ManifestSchema:
    columns = [str(c) for c in frame.columns]
    try:
        views_t = ManifestSchema(views=tuple(views)).views
    except ValidationError as exc:
        problems = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
        raise DataError(f"{where}: invalid views: {problems}") from exc
    missing = [v for v in views_t if not _view_columns(columns, v)]
    if missing:
        raise DataError(_missing_view_message(where, missing, columns))
    for view in views_t:
        if view in columns and any(c.startswith(f"{view}.") for c in columns):
            raise DataError(
                f"{where}: view {view!r} has both a '{view}' column and '{view}.<field>' columns; "
                "keep one form"
            )
    taken = set(RESERVED_COLUMNS)
    for view in views_t:
        taken.update(_view_columns(columns, view))
    labels = tuple(c for c in columns if c not in taken)
    return ManifestSchema(views=views_t, labels=labels)
