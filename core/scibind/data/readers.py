"""The reader interface and reader resolution (which reader opens a path)."""

from __future__ import annotations

import fnmatch
from pathlib import Path
from typing import Any, ClassVar

from scibind.data.types import Sample
from scibind.errors import ReadError
from scibind.registry import ReaderSpec

__all__ = ["Reader", "find_readers", "resolve_reader"]


class Reader:
    """Base class of readers: a manifest value or a path -> :class:`Sample`.

    Subclasses set :attr:`modality` and implement :meth:`read`. Readers never guess silently: an unreadable
    file, unknown units or a malformed value raise :class:`scibind.errors.ReadError` naming the file and the
    record and saying how to fix it.
    """

    modality: ClassVar[str] = ""

    def read(self, value: Any, *, record_id: str = "", base_dir: Path | None = None) -> Sample:
        """Read one value.

        Args:
            value: A path (relative paths resolve against ``base_dir``) or an inline value.
            record_id: The manifest record id, for provenance and error messages.
            base_dir: Folder of the manifest the value came from.

        Returns:
            A :class:`Sample` of :attr:`modality`.

        Raises:
            ReadError: The value cannot be read.
        """
        raise NotImplementedError

    def describe(self, path: Path) -> dict[str, Any]:
        """What ``scibind inspect`` shows for ``path``: shape, dtype, units. Defaults to reading it."""
        sample = self.read(str(path), record_id=path.name)
        return {"modality": sample.modality, **summarize(sample.data), **sample.meta}

    def items(self, folder: Path) -> list[str]:
        """The ``scibind prepare`` items inside a folder this reader claims; by default the folder itself.

        A reader whose folders can mix several samples (a DICOM folder holding several series) returns one
        address per sample that its :meth:`read` and :meth:`prepare` accept (e.g. ``folder#<series uid>``).
        Files it cannot use should be returned as items of their own, so that preparing them raises the
        reader's error and ``prepare`` quarantines them while the other samples go on.
        """
        return [str(folder)]

    def prepare(self, path: Path, out_dir: Path) -> dict[str, Any]:
        """Prepare and cache one item for ``scibind prepare``; return a JSON-able summary.

        The default reads the item to validate it. Readers with expensive preprocessing (tiling, feature
        extraction, featurization) override this and write their cache under ``out_dir``.
        """
        return self.describe(path)


def summarize(data: Any) -> dict[str, Any]:
    """Shape/dtype/length of a sample's data, for inspect output."""
    shape = getattr(data, "shape", None)
    if shape is not None:
        return {"shape": list(shape), "dtype": str(getattr(data, "dtype", ""))}
    if isinstance(data, str):
        return {"length": len(data)}
    return {"type": type(data).__name__}


def _matches(spec: ReaderSpec, path: Path) -> bool:
    for pattern in spec.patterns:
        if pattern.startswith("dir:"):
            if path.is_dir() and any(path.glob(pattern[4:])):
                return True
        elif fnmatch.fnmatch(path.name.lower(), pattern.lower()):
            return True
    return False


def find_readers(path: str | Path, modality: str | None = None) -> list[ReaderSpec]:
    """Readers whose patterns claim ``path`` (optionally of one modality), highest priority first."""
    from scibind.api import list_readers

    p = Path(path)
    found = [s for s in list_readers() if (modality is None or s.modality == modality) and _matches(s, p)]
    return sorted(found, key=lambda s: (-s.priority, s.name))


def resolve_reader(path: str | Path, modality: str | None = None) -> ReaderSpec:
    """Pick the reader for ``path``: the only claimant, the ``scibind_choose_reader`` answer, or top priority.

    Raises:
        ReadError: No installed reader claims the path.
    """
    from scibind.plugins import get_plugin_state

    candidates = find_readers(path, modality)
    if not candidates:
        want = f" as modality {modality!r}" if modality else ""
        raise ReadError(
            f"no installed reader opens this file{want}; `scibind list readers` shows the patterns each "
            "reader claims, and a domain plugin (pip install 'scibind[all]') may add one",
            path=path,
        )
    if len(candidates) == 1:
        return candidates[0]
    chosen = get_plugin_state().manager.hook.scibind_choose_reader(
        path=str(path), modality=modality, candidates=candidates
    )
    return chosen if chosen is not None else candidates[0]
