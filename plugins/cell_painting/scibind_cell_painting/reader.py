"""Reading a Cell Painting field: per-channel files (or one multi-channel TIFF) -> named channel stack.

A sample's ``data`` is ``{"pixels": float32[C, H, W], "channels": int64[C]}``: the channel ids index
:data:`scibind_cell_painting.channels.CHANNELS`, so encoders know which stain each plane is whatever the
file order. ``meta`` holds ``source`` (the files), ``record``, ``channels`` (names), ``dtype``,
``original_size`` and whether illumination was corrected.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from scibind.data.readers import Reader
from scibind.data.types import Sample
from scibind.errors import ConfigError, ReadError

from scibind_cell_painting.channels import CHANNELS, canonical_channel

__all__ = ["NORMALIZATIONS", "FieldReader", "normalize_channel", "read_plane"]

NORMALIZATIONS = ("percentile", "dtype", "none")
ILLUM_PREFIX = "illum_"
_DTYPE_MAX = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}


def read_plane(path: Path, record_id: str = "") -> np.ndarray:
    """Read a TIFF as ``[C, H, W]`` (a single plane gives ``C = 1``).

    Raises:
        ReadError: The file is missing, not a TIFF tifffile can read, or not 2D / a 2D stack.
    """
    import tifffile

    if not path.is_file():
        raise ReadError(
            "image file not found; fix the path in the manifest", path=path, record=record_id or None
        )
    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            array = series.asarray()
            axes = series.axes
    except Exception as exc:  # tifffile raises TiffFileError, ValueError, OSError, ...
        raise ReadError(
            f"cannot read TIFF ({type(exc).__name__}: {exc})", path=path, record=record_id or None
        ) from exc
    if array.ndim == 2:
        return array[None]
    if array.ndim == 3 and axes.endswith("S"):
        return np.moveaxis(array, -1, 0)
    if array.ndim == 3:
        return array
    raise ReadError(
        f"expected a 2D plane or a channel stack, got shape {array.shape} (axes {axes}); pick one z plane "
        "and time point first",
        path=path,
        record=record_id or None,
    )


def _ome_channel_names(path: Path) -> list[str] | None:
    import tifffile

    with tifffile.TiffFile(path) as tif:
        xml = tif.ome_metadata
    if not xml:
        return None
    names = re.findall(r"<(?:\w+:)?Channel\b[^>]*\bName=\"([^\"]+)\"", xml)
    return names or None


def normalize_channel(
    plane: np.ndarray, method: str, percentiles: tuple[float, float] = (1.0, 99.8)
) -> np.ndarray:
    """Scale one channel to about ``[0, 1]``.

    Args:
        plane: ``[H, W]`` intensities (after illumination correction).
        method: ``percentile`` (map the low/high percentiles to 0/1 and clip: robust to bit depth and
            exposure), ``dtype`` (divide by 255 or 65535) or ``none``.
        percentiles: Low and high percentiles of ``percentile``.
    """
    values = plane.astype(np.float32)
    if method == "percentile":
        low, high = np.percentile(values, percentiles)
        return np.clip((values - low) / max(float(high - low), 1e-6), 0.0, 1.0)
    if method == "dtype":
        return values / _DTYPE_MAX.get(plane.dtype, 1.0)
    return values


class FieldReader(Reader):
    """A Cell Painting field -> ``{"pixels": float32[C, H, W], "channels": int64[C]}``.

    Values it reads:

    - ``{channel: path}`` (the ``<view>.<Channel>`` columns of a manifest, e.g. ``cells.DNA``), with
      optional ``illum_<Channel>`` entries naming ``.npy`` illumination functions the channel is divided by;
    - a path to a multi-channel TIFF / OME-TIFF; channel names come from the OME metadata or from
      ``channel_names``.

    Args:
        channels: Channels to keep, in this order (default: every channel present, in canonical order).
        missing: ``error`` (a channel of ``channels`` without a file is an error) or ``drop`` (keep the rest).
        dtypes: Accepted pixel types; anything else (e.g. float images, 32-bit) is an error.
        normalize: One of :data:`NORMALIZATIONS` (per channel).
        percentiles: Low/high percentiles for ``normalize="percentile"``.
        size: ``(H, W)`` to resize to (area averaging when shrinking), or ``None``.
        channel_names: Names of the planes of multi-channel TIFFs without OME channel names.
        cache_mb: Keep up to this many MiB of decoded fields in memory (keyed by the files, their sizes and
            modification times), so epochs after the first do not decode TIFFs again; 0 turns it off.
    """

    modality: ClassVar[str] = "cell_painting_image"

    def __init__(
        self,
        channels: Sequence[str] | None = None,
        missing: str = "error",
        dtypes: Sequence[str] = ("uint8", "uint16"),
        normalize: str = "percentile",
        percentiles: Sequence[float] = (1.0, 99.8),
        size: Sequence[int] | None = None,
        channel_names: Sequence[str] | None = None,
        cache_mb: float = 256.0,
    ) -> None:
        if missing not in ("error", "drop"):
            raise ConfigError(f"missing must be 'error' or 'drop', got {missing!r}")
        if normalize not in NORMALIZATIONS:
            raise ConfigError(f"normalize must be one of {NORMALIZATIONS}, got {normalize!r}")
        if len(percentiles) != 2 or not 0 <= percentiles[0] < percentiles[1] <= 100:
            raise ConfigError(
                f"percentiles must be (low, high) with 0 <= low < high <= 100, got {percentiles}"
            )
        if size is not None and (len(size) != 2 or min(int(s) for s in size) < 1):
            raise ConfigError(f"size must be (H, W) with positive values, got {size!r}")
        self.channels = None if channels is None else [canonical_channel(c) for c in channels]
        self.missing = missing
        self.dtypes = tuple(np.dtype(d) for d in dtypes)
        self.normalize = normalize
        self.percentiles = (float(percentiles[0]), float(percentiles[1]))
        self.size = None if size is None else (int(size[0]), int(size[1]))
        self.channel_names = None if channel_names is None else [canonical_channel(c) for c in channel_names]
        self.cache_bytes = int(cache_mb * 2**20)
        self._cache: OrderedDict[Any, Sample] = OrderedDict()
        self._cached_bytes = 0

    def _resolve(self, value: Any, base_dir: Path | None, record_id: str) -> Path:
        if not isinstance(value, (str, Path)) or not str(value).strip():
            raise ReadError(f"expected an image path, got {value!r}", record=record_id or None)
        path = Path(str(value).strip()).expanduser()
        if not path.is_absolute() and base_dir is not None:
            path = Path(base_dir) / path
        return path

    def _planes_from_files(
        self, value: Mapping[str, Any], base_dir: Path | None, record_id: str
    ) -> tuple[dict[str, np.ndarray], dict[str, Path], dict[str, Path]]:
        files: dict[str, Path] = {}
        illum: dict[str, Path] = {}
        named: set[str] = set()
        if "y_px" in value or "x_px" in value:
            raise ReadError(
                "this record is a single cell (it has y_px / x_px centre fields); read its view with the "
                "cell_painting/cell reader (towers.<view>.reader: cell_painting/cell)",
                record=record_id or None,
            )
        for key, item in value.items():
            is_illum = str(key).startswith(ILLUM_PREFIX)
            try:
                name = canonical_channel(str(key)[len(ILLUM_PREFIX) :] if is_illum else str(key))
            except ConfigError as exc:
                raise ReadError(f"column field {key!r}: {exc}", record=record_id or None) from exc
            if not is_illum:
                named.add(name)
            if item is None:
                continue
            (illum if is_illum else files)[name] = self._resolve(item, base_dir, record_id)
        wanted = self.channels or [c for c in CHANNELS if c in named]
        lacking = [c for c in wanted if c not in files]
        if lacking and (self.missing == "error" or len(lacking) == len(wanted)):
            known = ", ".join(f"{c}={p.name}" for c, p in files.items()) or "none"
            raise ReadError(
                f"no file for channel(s) {lacking} (files: {known}); fix the manifest, or read with "
                "missing='drop' / channels=[...] to use the others",
                path=next(iter(files.values()), None),
                record=record_id or None,
            )
        planes = {}
        for channel in wanted:
            if channel not in files:
                continue
            stack = read_plane(files[channel], record_id)
            if stack.shape[0] != 1:
                raise ReadError(
                    f"channel {channel} file holds {stack.shape[0]} planes; expected one",
                    path=files[channel],
                    record=record_id or None,
                )
            planes[channel] = stack[0]
        return planes, {c: files[c] for c in planes}, illum

    def _planes_from_stack(self, path: Path, record_id: str) -> dict[str, np.ndarray]:
        stack = read_plane(path, record_id)
        names = self.channel_names or _ome_channel_names(path)
        if names is None:
            raise ReadError(
                f"multi-channel TIFF with {stack.shape[0]} planes and no OME channel names; pass "
                "channel_names=[...] (e.g. ['DNA', 'ER', 'RNA', 'AGP', 'Mito'])",
                path=path,
                record=record_id or None,
            )
        try:
            names = [canonical_channel(n) for n in names]
        except ConfigError as exc:
            raise ReadError(str(exc), path=path, record=record_id or None) from exc
        if len(names) != stack.shape[0]:
            raise ReadError(
                f"{len(names)} channel names for {stack.shape[0]} planes", path=path, record=record_id or None
            )
        present = dict(zip(names, stack, strict=True))
        wanted = self.channels or [c for c in CHANNELS if c in present]
        lacking = [c for c in wanted if c not in present]
        if lacking and self.missing == "error":
            raise ReadError(f"the stack has no channel(s) {lacking}", path=path, record=record_id or None)
        return {c: present[c] for c in wanted if c in present}

    def read(self, value: Any, *, record_id: str = "", base_dir: Path | None = None) -> Sample:
        """Read one field (from the in-memory cache when its files are unchanged).

        Raises:
            ReadError: A channel file is missing or unreadable, channels differ in size or bit depth, the bit
                depth is not accepted, or an illumination function does not fit. Messages name the files.
        """
        key = self._cache_key(value, base_dir) if self.cache_bytes > 0 else None
        if key is not None and key in self._cache:
            self._cache.move_to_end(key)
            hit = self._cache[key]
            data = {"pixels": hit.data["pixels"].clone(), "channels": hit.data["channels"].clone()}
            return Sample(
                id=record_id, modality=self.modality, data=data, meta={**hit.meta, "record": record_id}
            )
        sample = self._read(value, record_id=record_id, base_dir=base_dir)
        if key is not None:
            size = sample.data["pixels"].numel() * 4
            if size <= self.cache_bytes:
                self._cache[key] = sample
                self._cached_bytes += size
                while self._cached_bytes > self.cache_bytes:
                    _, old = self._cache.popitem(last=False)
                    self._cached_bytes -= old.data["pixels"].numel() * 4
            data = {"pixels": sample.data["pixels"].clone(), "channels": sample.data["channels"].clone()}
            sample = Sample(id=sample.id, modality=sample.modality, data=data, meta=sample.meta)
        return sample

    def _cache_key(self, value: Any, base_dir: Path | None) -> Any:
        items = value.items() if isinstance(value, Mapping) else [("", value)]
        key = []
        for name, item in sorted(items, key=lambda kv: str(kv[0])):
            if item is None:
                key.append((str(name), None))
                continue
            if not isinstance(item, (str, Path)):
                return None
            path = self._resolve(item, base_dir, "")
            try:
                stat = path.stat()
            except OSError:
                return None  # let the read report the missing file
            key.append((str(name), str(path), stat.st_size, stat.st_mtime_ns))
        return tuple(key)

    def _read(self, value: Any, *, record_id: str = "", base_dir: Path | None = None) -> Sample:
        """Read one field from its files.

        Raises:
            ReadError: A channel file is missing or unreadable, channels differ in size or bit depth, the bit
                depth is not accepted, or an illumination function does not fit. Messages name the files.
        """
        import torch

        illum: dict[str, Path] = {}
        if isinstance(value, Mapping):
            planes, files, illum = self._planes_from_files(value, base_dir, record_id)
            sources: Any = [str(p) for p in files.values()]
        else:
            path = self._resolve(value, base_dir, record_id)
            planes = self._planes_from_stack(path, record_id)
            files = dict.fromkeys(planes, path)
            sources = str(path)
        first = next(iter(files.values()))
        shapes = {c: p.shape for c, p in planes.items()}
        dtypes = {c: p.dtype for c, p in planes.items()}
        if len(set(shapes.values())) > 1:
            detail = ", ".join(f"{c} ({files[c].name}): {s}" for c, s in shapes.items())
            raise ReadError(f"channel images differ in size: {detail}", path=first, record=record_id or None)
        if len(set(dtypes.values())) > 1:
            detail = ", ".join(f"{c} ({files[c].name}): {d}" for c, d in dtypes.items())
            raise ReadError(
                f"channel images differ in bit depth: {detail}", path=first, record=record_id or None
            )
        dtype = next(iter(dtypes.values()))
        if dtype not in self.dtypes:
            raise ReadError(
                f"unexpected pixel type {dtype} (accepted: {[str(d) for d in self.dtypes]}); convert the "
                "images or pass dtypes=[...] to accept it",
                path=first,
                record=record_id or None,
            )
        out = []
        for channel, plane in planes.items():
            values = plane
            if channel in illum:
                values = self._correct(plane, illum[channel], record_id)
            out.append(normalize_channel(values, self.normalize, self.percentiles))
        pixels = torch.from_numpy(np.stack(out).astype(np.float32))
        original_size = (int(pixels.shape[1]), int(pixels.shape[2]))
        if self.size is not None and original_size != self.size:
            pixels = torch.nn.functional.interpolate(
                pixels[None], size=self.size, mode="area" if self.size[0] < original_size[0] else "bilinear"
            )[0]
        names = list(planes)
        data = {"pixels": pixels, "channels": torch.tensor([CHANNELS.index(c) for c in names])}
        meta = {
            "source": sources,
            "record": record_id,
            "channels": names,
            "dtype": str(dtype),
            "original_size": original_size,
            "normalize": self.normalize,
            "illumination_corrected": sorted(c for c in names if c in illum),
        }
        return Sample(id=record_id, modality=self.modality, data=data, meta=meta)

    def _correct(self, plane: np.ndarray, path: Path, record_id: str) -> np.ndarray:
        try:
            function = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise ReadError(
                f"cannot load the illumination function ({exc})", path=path, record=record_id or None
            ) from exc
        if function.shape != plane.shape:
            raise ReadError(
                f"illumination function of shape {function.shape} does not fit images of shape {plane.shape}",
                path=path,
                record=record_id or None,
            )
        if not np.isfinite(function).all() or float(function.min()) <= 0:
            raise ReadError(
                "illumination function must be finite and positive", path=path, record=record_id or None
            )
        return plane.astype(np.float32) / function.astype(np.float32)

    def describe(self, path: Path) -> dict[str, Any]:
        """Shape, channels, bit depth and intensity range of a multi-channel TIFF (or one channel file)."""
        path = Path(path)
        stack = read_plane(path, path.name)
        names = self.channel_names or _ome_channel_names(path)
        return {
            "modality": self.modality,
            "shape": list(stack.shape),
            "dtype": str(stack.dtype),
            "channels": names,
            "min": int(stack.min()) if stack.dtype.kind in "iu" else float(stack.min()),
            "max": int(stack.max()) if stack.dtype.kind in "iu" else float(stack.max()),
            "source": str(path),
        }
