"""Decoding native TIFF tiles directly (tifffile + imagecodecs), bypassing OpenSlide's per-call drawing.

OpenSlide's ``read_region`` spends most of its time compositing, not decoding (openslide issues #440, #552,
#719). When a request is exactly one stored tile of a TIFF-family slide (same size as the tile grid, aligned
to it, wholly inside the image), this module reads the tile's bytes with one ``pread`` and decodes them with
tifffile's codec path (libjpeg-turbo through imagecodecs). The pixels equal OpenSlide's up to JPEG decoder
rounding; anything else returns ``None`` so the caller falls back to OpenSlide.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["NativeTiles"]

_CODECS = {1, 5, 7, 8, 32946}  # none, LZW, JPEG, deflate, deflate (Adobe)


@dataclass
class _LevelPages:
    page: Any
    tile_w: int
    tile_h: int
    cols: int
    rows: int
    width: int
    height: int
    downsample: float


class NativeTiles:
    """Direct reads of native tiles, one level per OpenSlide level that has a matching tiled TIFF page.

    Build it with :meth:`open`; :meth:`read` returns ``None`` for any request it cannot serve exactly.
    """

    def __init__(self, path: Path, tif: Any, levels: dict[int, _LevelPages]) -> None:
        self.path = path
        self._tif = tif
        self._levels = levels
        self._fd = os.open(path, os.O_RDONLY)

    @classmethod
    def open(cls, path: str | Path, levels: Sequence[Any]) -> NativeTiles | None:
        """Map OpenSlide ``levels`` to tiled RGB pages of the TIFF at ``path``; ``None`` when none match.

        Args:
            path: The slide file.
            levels: :class:`scibind_pathology.slide.Level` objects (index, dimensions, downsample).
        """
        import tifffile

        try:
            tif = tifffile.TiffFile(path)
        except Exception:  # not parseable by tifffile: OpenSlide serves every read
            return None
        by_size = {}
        for page in tif.pages:
            if (
                getattr(page, "is_tiled", False)
                and page.samplesperpixel == 3
                and page.planarconfig == 1
                and page.bitspersample == 8
                and int(page.compression) in _CODECS
                and page.tiledepth == 1
            ):
                by_size.setdefault((page.imagewidth, page.imagelength), page)
        mapped = {}
        for level in levels:
            page = by_size.get(tuple(level.dimensions))
            if page is None:
                continue
            mapped[level.index] = _LevelPages(
                page=page,
                tile_w=page.tilewidth,
                tile_h=page.tilelength,
                cols=-(-page.imagewidth // page.tilewidth),
                rows=-(-page.imagelength // page.tilelength),
                width=page.imagewidth,
                height=page.imagelength,
                downsample=float(level.downsample),
            )
        if not mapped:
            tif.close()
            return None
        return cls(Path(path), tif, mapped)

    def tile_size(self, level: int) -> tuple[int, int] | None:
        """``(width, height)`` of the native tiles of ``level``, or ``None`` when it has none."""
        info = self._levels.get(level)
        return None if info is None else (info.tile_w, info.tile_h)

    def read(
        self, x: int, y: int, level: int, size: tuple[int, int], out: np.ndarray | None = None
    ) -> np.ndarray | None:
        """RGB ``uint8[h, w, 3]`` of the native tile at level-0 ``(x, y)``, or ``None`` when not aligned.

        Args:
            x: Level-0 x of the tile's corner.
            y: Level-0 y of the tile's corner.
            level: The level to read.
            size: ``(w, h)`` of the request in pixels of ``level``.
            out: A C-contiguous ``uint8[h, w, 3]`` to decode JPEG tiles into (saves a copy).
        """
        info = self._levels.get(level)
        if info is None or (int(size[0]), int(size[1])) != (info.tile_w, info.tile_h):
            return None
        lx, ly = x / info.downsample, y / info.downsample
        if lx != int(lx) or ly != int(ly):
            return None
        lx, ly = int(lx), int(ly)
        if lx % info.tile_w or ly % info.tile_h or lx < 0 or ly < 0:
            return None
        if lx + info.tile_w > info.width or ly + info.tile_h > info.height:
            return None  # an edge tile: OpenSlide pads it with white, let it do so
        index = (ly // info.tile_h) * info.cols + lx // info.tile_w
        page = info.page
        count = page.databytecounts[index]
        if count == 0:
            return None
        data = os.pread(self._fd, count, page.dataoffsets[index])
        try:
            if int(page.compression) == 7:
                import imagecodecs

                # Aperio stores RGB JPEG (no colour transform); tifffile-written files store YCbCr
                colorspace = "RGB" if int(page.photometric) == 2 else None
                return imagecodecs.jpeg8_decode(
                    data, tables=page.jpegtables, colorspace=colorspace, outcolorspace="RGB", out=out
                )
            segment, _, _ = page.decode(data, index, jpegtables=page.jpegtables)
        except Exception:  # a corrupt tile: OpenSlide will report it with its own error
            return None
        tile = segment[0] if segment.ndim == 4 else segment
        return np.ascontiguousarray(tile[: info.tile_h, : info.tile_w, :3])

    def close(self) -> None:
        """Close the file descriptors."""
        os.close(self._fd)
        self._tif.close()
