"""Atomic file writes: write a temporary file, fsync it, ``os.replace`` it into place, fsync the folder.

A reader (or a resumed run) therefore sees either the old file or the complete new one, never a torn
write, even when the process is killed with SIGKILL or the machine loses power.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["atomic_replace", "atomic_write_bytes", "atomic_write_json", "atomic_write_text", "fsync_dir"]


def fsync_dir(path: str | Path) -> None:
    """Flush a folder's entries (new, renamed, removed files) to disk.

    Args:
        path: The folder. Platforms that cannot open folders (Windows) are skipped silently.
    """
    with contextlib.suppress(OSError):
        _fsync_path(Path(path))


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temp file in the same folder, fsync, rename, fsync folder).

    Args:
        path: Destination file; its folder is created when missing.
        data: The bytes to write.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically (see :func:`atomic_write_bytes`)."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    """Write ``obj`` as indented JSON to ``path`` atomically (see :func:`atomic_write_bytes`)."""
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def atomic_replace(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temporary path beside ``path``, fsync the result and move it into place.

    Works for files and for folders (a Zarr store, a cache directory): the old content stays whole until
    the new one is complete.

    Args:
        path: Final file or folder; its parent is created.
        write: Writes the complete content to the path it is given.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    tmp = scratch / path.name
    try:
        write(tmp)
        for item in [*tmp.rglob("*"), tmp] if tmp.is_dir() else [tmp]:
            _fsync_path(item)
        if path.is_dir() and not path.is_symlink():
            os.replace(path, scratch / "old")
        os.replace(tmp, path)
        fsync_dir(path.parent)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return path


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
