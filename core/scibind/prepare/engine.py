"""Running ``scibind prepare``: per-item state, quarantine, summary, optional process pool.

Output folder layout::

    <out>/cache/<reader>/<item-key>/   what the reader's ``prepare`` wrote (tiles, features, graphs, ...)
    <out>/<name>                       files a reader published from its cache (e.g. ``<slide>.h5``, linked)
    <out>/state/<item-key>.json        done-marker of a finished item (atomic write); a rerun skips it
    <out>/quarantine.jsonl             one {"path", "record", "reason"} line per bad item of the last run
    <out>/summary.json                 counts: total, prepared, skipped, quarantined (plus ignored files)

A killed run resumes: finished items have markers; the item that was in flight has none, so its partial
cache folder is cleared and it is prepared again. Bad items are retried on every run (a fixed file then
succeeds), so ``quarantine.jsonl`` always describes the latest run.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from scibind.atomic import atomic_replace, atomic_write_json, atomic_write_text
from scibind.errors import ConfigError, DataError, ReadError, ScibindError
from scibind.jsonable import jsonable
from scibind.prepare.items import PrepareItem, collect_items
from scibind.prepare.options import parse_overrides

__all__ = ["PrepareSummary", "prepare_item", "run_prepare"]

_READERS: dict[tuple[str, str], Any] = {}


@dataclass
class PrepareSummary:
    """Counts of one ``scibind prepare`` run (written to ``<out>/summary.json``).

    Attributes:
        out_dir: The output folder.
        total: Items found (plus inputs no reader could take).
        prepared: Items prepared by this run.
        skipped: Items finished by an earlier run.
        quarantined: Bad items (listed in ``quarantine.jsonl``).
        ignored: Files inside folder sources that no reader claims.
        readers: Items per reader.
        strict: Whether ``--strict`` was set.
        stopped_early: ``--strict`` stopped the run at the first bad item.
        seconds: Wall time of the run.
    """

    out_dir: str
    total: int = 0
    prepared: int = 0
    skipped: int = 0
    quarantined: int = 0
    ignored: int = 0
    readers: dict[str, int] = field(default_factory=dict)
    strict: bool = False
    stopped_early: bool = False
    seconds: float = 0.0

    @property
    def exit_code(self) -> int:
        """1 when ``--strict`` saw a bad item or every item failed; else 0."""
        if self.quarantined and (self.strict or self.prepared + self.skipped == 0):
            return 1
        return 0

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {**asdict(self), "exit_code": self.exit_code}


def _reason(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, ScibindError) else f"{type(exc).__name__}: {exc}"


def build_reader(name: str, kwargs: dict[str, Any]) -> Any:
    """Build (once per process) the reader ``name`` with ``kwargs``.

    Raises:
        ConfigError: The reader rejects ``kwargs`` (unknown option or bad value).
    """
    cache_key = (name, json.dumps(kwargs, sort_keys=True, default=str))
    if cache_key not in _READERS:
        from scibind.api import create_reader

        try:
            _READERS[cache_key] = create_reader(name, **kwargs)
        except (TypeError, ValueError) as exc:
            raise ConfigError(
                f"reader {name!r} rejected the options {kwargs} ({exc}); check the names given with "
                f"--set reader.{name}.<option>=... against the reader's documentation"
            ) from exc
    return _READERS[cache_key]


def marker_path(out_dir: Path, key: str) -> Path:
    """The done-marker of item ``key``."""
    return out_dir / "state" / f"{key}.json"


def prepare_item(item: PrepareItem, kwargs: dict[str, Any], out_dir: str) -> dict[str, Any]:
    """Prepare one item and write its done-marker; never raises for a bad item.

    Runs in the main process or in a pool worker (a top-level function, so spawn-safe).

    Returns:
        ``{"key", "status": "prepared"}`` or ``{"key", "status": "quarantined", "reason"}``.
    """
    out = Path(out_dir)
    try:
        reader = build_reader(item.reader, kwargs)
        if item.path is not None:
            cache = out / "cache" / item.reader / item.key
            if cache.exists():  # left over by a killed run: start this item afresh
                shutil.rmtree(cache)
            cache.mkdir(parents=True)
            summary = reader.prepare(Path(item.path), cache)
            publish(summary.pop("publish", []) if isinstance(summary, dict) else [], cache, out, item.key)
        else:
            from scibind.data.readers import summarize

            base_dir = Path(item.base_dir) if item.base_dir else None
            sample = reader.read(item.value, record_id=item.record or "", base_dir=base_dir)
            summary = {"modality": sample.modality, **summarize(sample.data), **sample.meta}
    except ConfigError:
        raise
    except Exception as exc:  # any failure of a reader on one item quarantines that item only
        return {"key": item.key, "status": "quarantined", "reason": _reason(exc)}
    marker = {**asdict(item), "status": "done", "summary": jsonable(summary), "finished_at": time.time()}
    atomic_write_json(marker_path(out, item.key), jsonable(marker))
    return {"key": item.key, "status": "prepared"}


def publish(names: Sequence[str], cache: Path, out: Path, key: str) -> None:
    """Link the files a reader asked to publish from its cache folder to the top of ``out``.

    A reader's ``prepare`` may return ``"publish": ["<slide>.h5", ...]``: files of its cache folder that users
    expect at ``<out>/<name>`` (the TRIDENT/CLAM layout). They are hard-linked (copied across file systems)
    and moved into place atomically; ``state/published/<name>`` records which item owns each name.

    Raises:
        ReadError: Another item already published a file of that name.
    """
    owners = out / "state" / "published"
    for name in names:
        source = cache / name
        if Path(name).name != name or not source.is_file():
            raise ReadError(f"the reader asked to publish {name!r}, which is not a file of its cache folder")
        owner = owners / name
        if owner.exists() and owner.read_text(encoding="utf-8") != key:
            raise ReadError(
                f"another item already wrote {out / name}; give the inputs distinct file names",
                path=source,
            )
        atomic_write_text(owner, key)

        def link(tmp: Path, source: Path = source) -> None:
            try:
                os.link(source, tmp)
            except OSError:
                shutil.copy2(source, tmp)

        atomic_replace(out / name, link)


def _run_serial(
    items: list[PrepareItem], kwargs: dict[str, dict[str, Any]], out: str
) -> Iterator[tuple[PrepareItem, dict[str, Any]]]:
    for item in items:
        yield item, prepare_item(item, kwargs.get(item.reader, {}), out)


def _run_pool(
    items: list[PrepareItem], kwargs: dict[str, dict[str, Any]], out: str, workers: int
) -> Iterator[tuple[PrepareItem, dict[str, Any]]]:
    # spawn: safe with torch and threads in the parent, and identical on Linux, macOS and Windows
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
        pending: dict[Future[dict[str, Any]], PrepareItem] = {
            pool.submit(prepare_item, item, kwargs.get(item.reader, {}), out): item for item in items
        }
        try:
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    yield pending.pop(future), future.result()
        finally:
            for future in pending:
                future.cancel()


def run_prepare(
    sources: Sequence[str | Path],
    out_dir: str | Path,
    *,
    overrides: Sequence[str] = (),
    workers: int = 1,
    strict: bool = False,
    on_item: Callable[[PrepareItem, dict[str, Any]], None] | None = None,
    on_start: Callable[[int], None] | None = None,
) -> PrepareSummary:
    """Prepare every item of ``sources`` into ``out_dir`` (see the module docstring for the layout).

    Args:
        sources: Files, folders and manifests.
        out_dir: Output folder (created).
        overrides: ``--set`` strings (``reader.<name>.<option>=value``, ``views.<column>=<modality>``).
        workers: Processes; 1 prepares in this process.
        strict: Stop at the first bad item (the summary's exit code is then 1).
        on_item: Called after each item finished with its result (for progress display).
        on_start: Called once with the number of items still to prepare.

    Returns:
        The :class:`PrepareSummary`, also written to ``<out>/summary.json``.

    Raises:
        DataError: Nothing to prepare was found.
        ConfigError: Bad ``--set`` option or ``workers`` < 1.
    """
    if workers < 1:
        raise ConfigError(f"--workers {workers}: use 1 or more processes")
    started = time.monotonic()
    out = Path(out_dir).expanduser().resolve()
    options = parse_overrides(list(overrides))
    collected = collect_items(sources, options, out)
    if not collected.items and not collected.rejected:
        raise DataError(
            f"nothing to prepare in {', '.join(map(str, sources))}: no installed reader claims any file "
            f"({collected.ignored} file(s) ignored); `scibind list readers` shows the patterns readers claim"
        )
    (out / "state").mkdir(parents=True, exist_ok=True)
    summary = PrepareSummary(
        out_dir=str(out),
        strict=strict,
        ignored=collected.ignored,
        total=len(collected.items) + len(collected.rejected),
    )
    for item in collected.items:
        summary.readers[item.reader] = summary.readers.get(item.reader, 0) + 1
    kwargs = collected.reader_kwargs
    todo = [item for item in collected.items if not marker_path(out, item.key).exists()]
    summary.skipped = len(collected.items) - len(todo)
    for name in dict.fromkeys(item.reader for item in todo):
        try:
            build_reader(name, kwargs.get(name, {}))  # fail fast on bad options, before any work
        except ConfigError:
            raise
        except ScibindError:
            pass  # e.g. a missing dependency: every item of that reader is quarantined with the pip command
    with open(out / "quarantine.jsonl", "w", encoding="utf-8") as quarantine:

        def bad(entry: dict[str, Any]) -> None:
            quarantine.write(json.dumps(entry, default=str) + "\n")
            quarantine.flush()
            summary.quarantined += 1

        for entry in collected.rejected:
            bad(entry)
        if not (strict and summary.quarantined):
            if on_start is not None:
                on_start(len(todo))
            run = (
                _run_serial(todo, kwargs, str(out))
                if workers == 1
                else _run_pool(todo, kwargs, str(out), workers)
            )
            for item, result in run:
                if result["status"] == "prepared":
                    summary.prepared += 1
                else:
                    bad(
                        {
                            "path": item.path,
                            "record": item.record,
                            "view": item.view,
                            "reader": item.reader,
                            "reason": result["reason"],
                        }
                    )
                if on_item is not None:
                    on_item(item, result)
                if strict and summary.quarantined:
                    break
        summary.stopped_early = strict and summary.quarantined > 0
    summary.seconds = round(time.monotonic() - started, 3)
    atomic_write_json(out / "summary.json", summary.to_dict())
    return summary
