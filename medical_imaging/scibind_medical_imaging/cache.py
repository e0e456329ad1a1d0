"""A budgeted cache of preprocessed volumes: RAM (LRU, bytes-bounded) in front of a disk folder (LRU).

MONAI's ``CacheDataset`` caches whole datasets in RAM and grows until the machine swaps (MONAI#3843). Here
both tiers have a byte budget and evict least-recently-used entries. Keys are the file *content* digest
plus the pipeline digest: editing a file, or changing any preprocessing option, misses the cache instead of
serving a stale volume. Content digests are memoised per ``(path, size, mtime)``, so a second epoch costs a
``stat`` per file and a lookup.

Disk entries are ``<key>.npy`` (read with ``allow_pickle=False``) plus ``<key>.json``; nothing is unpickled.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["VolumeCache", "content_digest"]

_DIGESTS: dict[tuple[str, int, int], str] = {}
_CHUNK = 1 << 22


def _file_digest(path: Path) -> str:
    stat = path.stat()
    memo = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    found = _DIGESTS.get(memo)
    if found is None:
        hasher = hashlib.blake2b(digest_size=20)
        with open(path, "rb") as handle:
            while chunk := handle.read(_CHUNK):
                hasher.update(chunk)
        found = _DIGESTS[memo] = hasher.hexdigest()
    return found


def content_digest(paths: Iterable[Path]) -> str:
    """Digest of the bytes of ``paths`` (order-independent; one file or every file of a series)."""
    digests = sorted(_file_digest(Path(p)) for p in paths)
    if len(digests) == 1:
        return digests[0]
    return hashlib.blake2b("".join(digests).encode(), digest_size=20).hexdigest()


class VolumeCache:
    """Preprocessed arrays and their JSON metadata under two byte budgets.

    Args:
        ram_mb: RAM budget in MiB (0 disables the RAM tier).
        disk_dir: Folder of the disk tier (``None`` disables it).
        disk_mb: Disk budget in MiB; the least recently used files are deleted beyond it.
    """

    def __init__(
        self, ram_mb: float = 1024, disk_dir: str | Path | None = None, disk_mb: float = 20480
    ) -> None:
        if ram_mb < 0 or disk_mb < 0:
            raise ValueError(f"cache budgets must be >= 0 MiB, got ram_mb={ram_mb}, disk_mb={disk_mb}")
        self.ram_bytes = int(ram_mb * 2**20)
        self.disk_bytes = int(disk_mb * 2**20)
        self.disk_dir = None if disk_dir is None else Path(disk_dir).expanduser()
        self._ram: OrderedDict[str, tuple[np.ndarray, dict[str, Any]]] = OrderedDict()
        self._ram_used = 0
        self._lock = threading.Lock()
        self.hits = {"ram": 0, "disk": 0}
        self.misses = 0

    def __getstate__(self) -> dict[str, Any]:
        """Pickle the configuration only (DataLoader workers started with spawn): each starts empty."""
        state = dict(self.__dict__)
        state.update(_ram=OrderedDict(), _ram_used=0, _lock=None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Restore a pickled cache with a fresh lock."""
        self.__dict__.update(state)
        self._lock = threading.Lock()

    @property
    def ram_used_bytes(self) -> int:
        """Bytes of arrays held in RAM now (never above the budget)."""
        return self._ram_used

    def get(self, key: str) -> tuple[np.ndarray, dict[str, Any], str] | None:
        """The cached ``(array, meta, tier)`` of ``key`` (tier ``"ram"`` or ``"disk"``), or ``None``."""
        with self._lock:
            entry = self._ram.get(key)
            if entry is not None:
                self._ram.move_to_end(key)
                self.hits["ram"] += 1
                return (*entry, "ram")
        entry = self._disk_get(key)
        if entry is not None:
            self.hits["disk"] += 1
            self._ram_put(key, entry)
            return (*entry, "disk")
        self.misses += 1
        return None

    def put(self, key: str, array: np.ndarray, meta: dict[str, Any]) -> None:
        """Store ``array`` (any numeric dtype) and JSON-able ``meta`` under ``key`` in both tiers."""
        entry = (np.ascontiguousarray(array), dict(meta))
        self._ram_put(key, entry)
        self._disk_put(key, entry)

    def _ram_put(self, key: str, entry: tuple[np.ndarray, dict[str, Any]]) -> None:
        size = entry[0].nbytes
        if size > self.ram_bytes:
            return
        with self._lock:
            if key in self._ram:
                return
            while self._ram and self._ram_used + size > self.ram_bytes:
                _, (old, _) = self._ram.popitem(last=False)
                self._ram_used -= old.nbytes
            self._ram[key] = entry
            self._ram_used += size

    def _disk_get(self, key: str) -> tuple[np.ndarray, dict[str, Any]] | None:
        if self.disk_dir is None:
            return None
        array_path, meta_path = self.disk_dir / f"{key}.npy", self.disk_dir / f"{key}.json"
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            array = np.load(array_path, allow_pickle=False)
        except (OSError, ValueError):
            return None
        os.utime(array_path)  # recency for LRU eviction
        return array, meta

    def _disk_put(self, key: str, entry: tuple[np.ndarray, dict[str, Any]]) -> None:
        if self.disk_dir is None or entry[0].nbytes > self.disk_bytes:
            return
        self.disk_dir.mkdir(parents=True, exist_ok=True)
        array_path = self.disk_dir / f"{key}.npy"
        tmp = self.disk_dir / f".{key}.{os.getpid()}.tmp.npy"
        np.save(tmp, entry[0], allow_pickle=False)
        os.replace(tmp, array_path)
        meta_tmp = self.disk_dir / f".{key}.{os.getpid()}.tmp.json"
        meta_tmp.write_text(json.dumps(entry[1]), encoding="utf-8")
        os.replace(meta_tmp, self.disk_dir / f"{key}.json")
        self._evict_disk()

    def _evict_disk(self) -> None:
        assert self.disk_dir is not None
        files = []
        for path in self.disk_dir.glob("*.npy"):
            if path.name.startswith("."):
                continue
            try:
                stat = path.stat()
            except OSError:
                continue
            files.append((stat.st_mtime_ns, stat.st_size, path))
        total = sum(size for _, size, _ in files)
        for _, size, path in sorted(files):
            if total <= self.disk_bytes:
                break
            path.unlink(missing_ok=True)
            path.with_suffix(".json").unlink(missing_ok=True)
            total -= size
