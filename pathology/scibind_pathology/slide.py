"""Opening whole-slide images with physical units: OpenSlide formats and plain images as virtual slides.

:func:`open_slide` returns a :class:`Slide`: levels (dimensions, downsamples), µm/px from the slide's
properties or, failing that, its TIFF resolution tags, and RGB region reads. A slide without units is an
error unless the caller gives ``slide_mpp``; µm/px are never guessed from magnification.

Reads that align with a TIFF-family slide's native tile grid are decoded directly from the file
(:mod:`scibind_pathology.native`), which is several times faster than OpenSlide's ``read_region`` and gives
the same pixels; everything else goes through OpenSlide.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scibind.errors import ReadError

__all__ = [
    "IMAGE_SUFFIXES",
    "SLIDE_PATTERNS",
    "Level",
    "Slide",
    "open_slide",
    "tiff_resolution_mpp",
]

SLIDE_PATTERNS: tuple[str, ...] = (
    "*.svs",
    "*.tif",
    "*.tiff",
    "*.ndpi",
    "*.mrxs",
    "*.scn",
    "*.svslide",
    "*.bif",
    "*.vms",
    "*.vmu",
    "*.dcm",
)
"""File patterns of the formats OpenSlide reads."""

IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg")
"""Plain images opened as single-level virtual slides (they need ``slide_mpp``)."""

NATIVE_VENDORS: tuple[str, ...] = ("generic-tiff", "aperio", "philips")
"""Vendors whose OpenSlide levels are plain TIFF tile grids.

A level whose size differs from its page (Philips' padded levels) is left to OpenSlide. Ventana BIF tiles may
overlap and Leica places images at offsets, so those always go through OpenSlide."""

_UNIT_UM = {2: 25_400.0, 3: 10_000.0}  # TIFF ResolutionUnit INCH / CENTIMETER -> µm per unit


@dataclass(frozen=True)
class Level:
    """One pyramid level.

    Attributes:
        index: Level number (0 = full resolution).
        dimensions: ``(width, height)`` in pixels of this level.
        downsample: Level-0 pixels per pixel of this level.
    """

    index: int
    dimensions: tuple[int, int]
    downsample: float


def tiff_resolution_mpp(path: str | Path) -> tuple[float, float] | None:
    """µm/px from the first page's TIFF ``XResolution``/``YResolution`` tags, or ``None``.

    Only inch and centimetre units count: ``ResolutionUnit`` NONE (1) carries no physical scale.

    Args:
        path: A TIFF-family file.
    """
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            tags = tif.pages[0].tags
            unit = tags.get("ResolutionUnit")
            xres, yres = tags.get("XResolution"), tags.get("YResolution")
            if unit is None or xres is None or yres is None or int(unit.value) not in _UNIT_UM:
                return None
            um = _UNIT_UM[int(unit.value)]
            x = xres.value[0] / xres.value[1] if xres.value[1] else 0.0
            y = yres.value[0] / yres.value[1] if yres.value[1] else 0.0
    except Exception:  # not a TIFF, or unreadable tags: no units from here
        return None
    if x <= 0 or y <= 0:
        return None
    return um / x, um / y


def _float(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and number > 0 else None


@dataclass
class Slide:
    """An open slide with physical units. Build it with :func:`open_slide`; close it (or use ``with``).

    Attributes:
        path: The slide file.
        vendor: OpenSlide's vendor (``aperio``, ``generic-tiff``, ...) or ``image`` for a plain image.
        levels: The pyramid levels, finest first.
        mpp_x: µm per level-0 pixel along x.
        mpp_y: µm per level-0 pixel along y.
        mpp_source: Where the units came from: ``properties``, ``tiff-resolution`` or ``given``.
        properties: The slide's properties (OpenSlide's key -> value).
        associated: Names of associated images (``label``, ``macro``, ``thumbnail``).
    """

    path: Path
    vendor: str
    levels: list[Level]
    mpp_x: float
    mpp_y: float
    mpp_source: str
    properties: dict[str, str]
    associated: list[str]
    handle: Any = field(repr=False)
    native: Any = field(default=None, repr=False)

    @property
    def mpp(self) -> float:
        """µm per level-0 pixel (mean of x and y)."""
        return (self.mpp_x + self.mpp_y) / 2.0

    @property
    def dimensions(self) -> tuple[int, int]:
        """``(width, height)`` of level 0."""
        return self.levels[0].dimensions

    def level_mpp(self, level: int) -> float:
        """µm/px of ``level``."""
        return self.mpp * self.levels[level].downsample

    def best_level_for_mpp(self, mpp: float, tolerance: float = 0.02) -> int:
        """The coarsest level still at least as fine as ``mpp`` (so reads only ever shrink).

        Args:
            mpp: Wanted µm/px.
            tolerance: Relative slack: a level up to ``mpp * (1 + tolerance)`` counts as fine enough.
        """
        best = 0
        for level in self.levels:
            if self.level_mpp(level.index) <= mpp * (1.0 + tolerance):
                best = level.index
        return best

    def read_region(self, x: int, y: int, level: int, size: tuple[int, int]) -> np.ndarray:
        """RGB ``uint8[h, w, 3]`` of a region: level-0 corner ``(x, y)``, ``size=(w, h)`` pixels of ``level``.

        Pixels outside the slide are white. A read that matches a native tile of a TIFF-family slide is
        decoded straight from the file; others use OpenSlide.

        Raises:
            ReadError: The slide's data is corrupt or truncated (the message names the file and region).
        """
        if self.native is not None:
            tile = self.native.read(x, y, level, size)
            if tile is not None:
                return tile
        try:
            region = self.handle.read_region((int(x), int(y)), int(level), (int(size[0]), int(size[1])))
        except Exception as exc:  # OpenSlideError and friends: a truncated or corrupt slide
            raise ReadError(
                f"cannot read region x={x} y={y} level={level} size={size} ({type(exc).__name__}: {exc}); "
                "the file is probably truncated or corrupt, re-export or re-download it",
                path=self.path,
            ) from exc
        return rgba_to_rgb(np.asarray(region))

    def read_level(self, level: int) -> np.ndarray:
        """The whole of ``level`` as RGB ``uint8[h, w, 3]``."""
        width, height = self.levels[level].dimensions
        return self.read_region(0, 0, level, (width, height))

    def thumbnail(self, max_side: int = 1024) -> np.ndarray:
        """An RGB thumbnail whose longer side is at most ``max_side`` (from the coarsest useful level)."""
        from PIL import Image

        width, height = self.dimensions
        scale = max(width, height) / max_side
        level = self.best_level_for_mpp(self.mpp * max(scale, 1.0), tolerance=0.0)
        image = Image.fromarray(self.read_level(level))
        size = (max(1, round(width / max(scale, 1.0))), max(1, round(height / max(scale, 1.0))))
        return np.asarray(image.resize(size, Image.Resampling.BILINEAR) if image.size != size else image)

    def describe(self) -> dict[str, Any]:
        """What ``scibind inspect`` shows: vendor, levels, µm/px and associated images."""
        return {
            "modality": "wsi_bag",
            "source": str(self.path),
            "vendor": self.vendor,
            "dimensions": list(self.dimensions),
            "levels": [
                {
                    "level": lv.index,
                    "dimensions": list(lv.dimensions),
                    "downsample": lv.downsample,
                    "mpp": round(self.level_mpp(lv.index), 6),
                }
                for lv in self.levels
            ],
            "mpp_x": self.mpp_x,
            "mpp_y": self.mpp_y,
            "mpp_source": self.mpp_source,
            "objective_power": _float(self.properties.get("openslide.objective-power")),
            "associated_images": list(self.associated),
            "native_tiles": self.native is not None,
        }

    def close(self) -> None:
        """Release the OpenSlide handle and the native reader's file."""
        if self.native is not None:
            self.native.close()
        self.handle.close()

    def __enter__(self) -> Slide:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def rgba_to_rgb(rgba: np.ndarray) -> np.ndarray:
    """Composite OpenSlide's premultiplied RGBA onto white (transparent areas outside the slide -> white)."""
    if rgba.shape[-1] == 3:
        return np.ascontiguousarray(rgba)
    alpha = rgba[..., 3:4]
    if alpha.min() == 255:
        return np.ascontiguousarray(rgba[..., :3])
    # premultiplied: out = rgb + (255 - alpha) (white background)
    out = rgba[..., :3].astype(np.uint16) + (255 - alpha.astype(np.uint16))
    return np.minimum(out, 255).astype(np.uint8)


def _open_handle(path: Path) -> tuple[Any, str]:
    import openslide

    if not path.exists():
        raise ReadError("no such file; check the path", path=path)
    if path.is_file() and path.stat().st_size == 0:
        raise ReadError("the file is empty (0 bytes); re-export or re-download the slide", path=path)
    try:
        vendor = openslide.OpenSlide.detect_format(str(path))
    except Exception as exc:  # an unreadable file
        raise ReadError(f"cannot probe the slide format ({exc})", path=path) from exc
    if vendor is None:
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            raise ReadError(
                "OpenSlide does not recognise this file as a whole-slide image (svs, tiled pyramidal "
                "tif/tiff, ndpi, mrxs, scn, svslide, bif, vms); it may be corrupt, truncated or of another "
                "type",
                path=path,
            )
        try:
            return openslide.ImageSlide(str(path)), "image"
        except Exception as exc:
            raise ReadError(f"cannot open as an image ({type(exc).__name__}: {exc})", path=path) from exc
    try:
        return openslide.OpenSlide(str(path)), vendor
    except Exception as exc:  # OpenSlideUnsupportedFormatError, OpenSlideError
        raise ReadError(
            f"OpenSlide cannot open this {vendor} slide ({type(exc).__name__}: {exc}); the file is probably "
            "truncated or corrupt",
            path=path,
        ) from exc


def open_slide(path: str | Path, *, slide_mpp: float | None = None, native: bool = True) -> Slide:
    """Open a slide (any OpenSlide format, or a PNG/JPEG as a one-level virtual slide).

    µm/px come from the slide's ``openslide.mpp-x``/``-y`` properties, else from TIFF resolution tags (inch
    or centimetre units), else from ``slide_mpp``; a slide with none of these is an error.

    Args:
        path: The slide file (or an MIRAX ``.mrxs`` with its folder beside it).
        slide_mpp: µm/px to use when the slide carries no units (ignored when it does).
        native: Decode reads that align with native TIFF tiles directly (faster, same pixels).

    Returns:
        The open :class:`Slide`.

    Raises:
        ReadError: The file is missing, empty, not a slide, corrupt, or has no units and no ``slide_mpp``.
    """
    path = Path(path).expanduser()
    handle, vendor = _open_handle(path)
    try:
        props = dict(handle.properties)
        mpp_x, mpp_y = _float(props.get("openslide.mpp-x")), _float(props.get("openslide.mpp-y"))
        source = "properties"
        if mpp_x is None or mpp_y is None:
            from_tags = tiff_resolution_mpp(path) if vendor != "image" else None
            if from_tags is not None:
                (mpp_x, mpp_y), source = from_tags, "tiff-resolution"
            elif slide_mpp is not None and _float(slide_mpp) is not None:
                mpp_x = mpp_y = float(slide_mpp)
                source = "given"
            else:
                raise ReadError(
                    "the slide carries no physical pixel size (no openslide.mpp-x/-y property and no TIFF "
                    "resolution tags); give it with slide_mpp=<µm per pixel> (e.g. --set "
                    "reader.pathology/wsi.slide_mpp=0.25)",
                    path=path,
                )
        levels = [
            Level(i, (int(w), int(h)), float(d))
            for i, ((w, h), d) in enumerate(
                zip(handle.level_dimensions, handle.level_downsamples, strict=True)
            )
        ]
        associated = sorted(getattr(handle, "associated_images", {}).keys())
        reader = None
        if native and vendor in NATIVE_VENDORS:
            from scibind_pathology.native import NativeTiles

            reader = NativeTiles.open(path, levels)
    except BaseException:
        handle.close()
        raise
    return Slide(path, vendor, levels, float(mpp_x), float(mpp_y), source, props, associated, handle, reader)
