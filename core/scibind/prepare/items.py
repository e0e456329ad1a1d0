"""Turning ``scibind prepare`` sources (files, folders, manifests) into items, each bound to one reader."""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scibind.errors import ConfigError, DataError, ReadError
from scibind.prepare.options import PrepareOptions
from scibind.registry import ReaderSpec

__all__ = ["Collected", "PrepareItem", "collect_items", "is_manifest"]

MANIFEST_SUFFIXES = (".csv", ".tsv", ".parquet", ".pq", ".jsonl", ".csv.gz", ".tsv.gz", ".jsonl.gz")
RESERVED = ("id", "split", "group")


@dataclass(frozen=True)
class PrepareItem:
    """One unit of work: a file or folder (``path``) or an inline manifest value (``value``).

    Attributes:
        key: Stable, file-system-safe id: a readable slug plus a hash of the reader, its options and the
            item's identity, so changing a reader option never reuses a stale cache entry.
        reader: Full name of the reader that prepares it.
        modality: The modality it yields.
        source: The ``SOURCE`` argument it came from.
        path: Absolute path of the file or folder, or ``None`` for an inline value.
        value: The inline manifest value (when ``path`` is ``None``).
        record: Manifest record id (``None`` for plain files).
        view: Manifest view (column) it came from.
        base_dir: Folder relative manifest values resolve against.
    """

    key: str
    reader: str
    modality: str
    source: str
    path: str | None = None
    value: Any = None
    record: str | None = None
    view: str | None = None
    base_dir: str | None = None

    @property
    def label(self) -> str:
        """How messages name the item: its path, or ``record/view`` for an inline value."""
        return (
            self.path if self.path is not None else f"{self.source} record {self.record!r} view {self.view!r}"
        )


@dataclass
class Collected:
    """The outcome of :func:`collect_items`.

    Attributes:
        items: Items to prepare, deduplicated, in source order.
        rejected: ``{"path", "record", "reason"}`` for inputs no reader can take (they are quarantined).
        ignored: Files inside folder sources that no reader claims (not items; counted in the summary).
        reader_kwargs: ``--set reader.<name>.<option>`` values by full reader name.
    """

    items: list[PrepareItem] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)
    ignored: int = 0
    reader_kwargs: dict[str, dict[str, Any]] = field(default_factory=dict)


def is_manifest(path: Path) -> bool:
    """Whether ``path`` is a manifest: a table file (CSV/TSV/Parquet/JSONL) whose columns include ``id``."""
    name = path.name.lower()
    if not path.is_file() or not name.endswith(MANIFEST_SUFFIXES):
        return False
    try:
        if name.endswith((".parquet", ".pq")):
            import pyarrow.parquet as pq

            return "id" in pq.read_schema(path).names
        import gzip

        opener: Any = gzip.open if name.endswith(".gz") else open
        with opener(path, "rt", encoding="utf-8") as handle:
            first = next((line for line in handle if line.strip()), "")
    except Exception:  # an unreadable table is not a manifest; its reader (if any) reports the problem
        return False
    if ".jsonl" in name:
        try:
            return "id" in json.loads(first)
        except (json.JSONDecodeError, TypeError):
            return False
    separator = "\t" if ".tsv" in name else ","
    return "id" in [c.strip().strip('"') for c in first.rstrip("\r\n").split(separator)]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("._")[:60] or "item"


def item_key(label: str, identity: dict[str, Any]) -> str:
    """``<slug>-<hash>``: readable, unique per reader + options + item identity."""
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:12]
    return f"{_slug(label)}-{digest}"


class _Collector:
    def __init__(self, options: PrepareOptions, out_dir: Path) -> None:
        from scibind.api import get_registry

        self.registry = get_registry()
        self.out_dir = out_dir.resolve()
        self.views = options.views
        self.kwargs: dict[str, dict[str, Any]] = {}
        for group, kwargs in options.groups.items():
            takers = [spec.name for spec in self.registry.list("readers") if group in spec.option_groups]
            if not takers:
                known = sorted({g for spec in self.registry.list("readers") for g in spec.option_groups})
                raise ConfigError(
                    f"--set {group}.<option>: no installed reader takes {group!r} options; option groups "
                    f"are {known or 'none'}, or use --set reader.<reader>.<option>=..."
                )
            for name in takers:
                self.kwargs.setdefault(name, {}).update(kwargs)
        for name, kwargs in options.reader_kwargs.items():
            full = self.registry.get("readers", name).name
            self.kwargs.setdefault(full, {}).update(kwargs)
        self.result = Collected(reader_kwargs=self.kwargs)
        self._seen: set[str] = set()

    def add(self, spec: ReaderSpec, source: str, label: str, **fields: Any) -> None:
        identity = {
            "reader": spec.name,
            "options": self.kwargs.get(spec.name, {}),
            **{k: v for k, v in fields.items() if k in ("path", "value", "record", "view")},
        }
        key = item_key(label, identity)
        if key in self._seen:
            return
        self._seen.add(key)
        self.result.items.append(
            PrepareItem(key=key, reader=spec.name, modality=spec.modality, source=source, **fields)
        )

    def add_path(self, path: Path, source: str) -> None:
        from scibind.data.readers import resolve_reader

        try:
            spec = resolve_reader(path)
        except ReadError as exc:
            self.result.rejected.append({"path": str(path), "record": None, "reason": str(exc)})
            return
        self.add(spec, source, path.name, path=str(path))

    def add_folder(self, spec: ReaderSpec, source: str, folder: Path) -> None:
        """A claimed folder: the items its reader finds in it (:meth:`Reader.items`), usually itself."""
        from scibind.api import create_reader

        try:
            addresses = create_reader(spec.name, **self.kwargs.get(spec.name, {})).items(folder)
        except Exception as exc:  # the reader's own error names the folder; quarantine it, go on
            self.result.rejected.append({"path": str(folder), "record": None, "reason": str(exc)})
            return
        for address in addresses:
            label = folder.name if address == str(folder) else f"{folder.name}_{Path(address).name}"
            self.add(spec, source, label, path=str(address))

    def walk(self, root: Path, source: str) -> None:
        from scibind.data.readers import find_readers, resolve_reader

        for folder, dirs, files in os.walk(root):
            here = Path(folder)
            dirs[:] = sorted(
                d for d in dirs if not d.startswith(".") and (here / d).resolve() != self.out_dir
            )
            if find_readers(here):
                self.add_folder(resolve_reader(here), source, here)
                dirs[:] = []
                continue
            for name in sorted(files):
                path = here / name
                if name.startswith(".") or not find_readers(path):
                    self.result.ignored += not name.startswith(".")
                    continue
                self.add(resolve_reader(path), source, str(path.relative_to(root)), path=str(path))

    def manifest(self, path: Path, source: str) -> None:
        from scibind.data.manifest import read_manifest

        manifest = read_manifest(path)
        columns = [str(c) for c in manifest.frame.columns]
        views = self.views or {
            v: v
            for v in dict.fromkeys(c.split(".", 1)[0] for c in columns)
            if v not in RESERVED and v in self.registry.entries["modalities"]
        }
        if not views:
            raise DataError(
                f"{path}: no column is named after a registered modality (columns: {', '.join(columns)}); "
                "map columns with --set views.<column>=<modality> (see `scibind list modalities`)"
            )
        for view, target in views.items():
            reader = None
            if "/" in target:  # a reader name: its modality, and this reader for every value
                reader = self.registry.get("readers", target)
                modality = reader.modality
            else:
                modality = target
            if modality not in self.registry.entries["modalities"]:
                raise ConfigError(
                    f"views.{view}={modality}: no modality named {modality!r}; "
                    "`scibind list modalities` shows the registered ones"
                )
            for record, value in zip(manifest.ids, manifest.view_values(view), strict=True):
                if value is not None:
                    self.manifest_value(manifest.base_dir, source, view, modality, record, value, reader)

    def manifest_value(
        self,
        base_dir: Path,
        source: str,
        view: str,
        modality: str,
        record: str,
        value: Any,
        reader: ReaderSpec | None = None,
    ) -> None:
        from scibind.data.readers import find_readers, resolve_reader

        label = f"{record}.{view}"
        common = {"record": record, "view": view, "base_dir": str(base_dir)}
        is_path = isinstance(value, str) and bool(value.strip())
        candidate = (base_dir / value.strip()).resolve() if is_path else None
        if candidate is not None and candidate.exists():
            if reader is None and find_readers(candidate, modality):
                reader = resolve_reader(candidate, modality)
            if reader is not None:
                self.add(reader, source, label, path=str(candidate), **common)
                return
        self.add(reader or self.inline_reader(modality, view), source, label, value=value, **common)

    def inline_reader(self, modality: str, view: str) -> ReaderSpec:
        specs = [s for s in self.registry.list("readers") if s.modality == modality]
        if not specs:
            raise ConfigError(
                f"view {view!r} has modality {modality!r} but no installed reader produces it; "
                "`scibind list readers` shows the readers, a domain plugin may add one"
            )
        return sorted(specs, key=lambda s: (-s.priority, s.plugin != "core", s.name))[0]


def collect_items(sources: Sequence[str | Path], options: PrepareOptions, out_dir: Path) -> Collected:
    """Expand sources into items.

    A file is an item of the reader that claims it; a folder is walked (each claimed file is an item, and
    each claimed sub-folder layout gives the items its reader finds in it, :meth:`Reader.items`; unclaimed
    files are counted as ignored); a manifest (a table with an
    ``id`` column) gives one item per record and view whose value is present.

    Args:
        sources: Files, folders and manifests.
        options: Parsed ``--set`` overrides.
        out_dir: The output folder (skipped when it lies inside a folder source).

    Raises:
        DataError: A source does not exist, or a manifest binds no view.
        ConfigError: A view maps to an unknown modality or one no reader produces.
        UnknownNameError: A ``reader.<name>`` override names no registered reader.
    """
    collector = _Collector(options, out_dir)
    for source in sources:
        path = Path(source).expanduser().resolve()
        if not path.exists():
            raise DataError(f"source {str(source)!r} does not exist; pass a file, a folder or a manifest")
        if path.is_dir():
            collector.walk(path, str(source))
        elif is_manifest(path):
            collector.manifest(path, str(source))
        else:
            collector.add_path(path, str(source))
    return collector.result
