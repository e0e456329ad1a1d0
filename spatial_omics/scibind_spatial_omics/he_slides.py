"""Full-resolution H&E through the pathology plugin's slide reader (OpenSlide), when it is installed.

Visium full-resolution images and Xenium H&E are often pyramidal whole-slide files (Aperio SVS, tiled
pyramidal TIFF) too large to hold as one array. When ``scibind_pathology`` is importable and OpenSlide
recognises the file, spot patches are read as regions of the slide (:func:`slide_patch`): only the pixels
of each patch are decoded, from the coarsest pyramid level that is still at least as fine as the patch
needs. Otherwise (plugin not installed, PNG/JPEG, a stripped TIFF that OpenSlide does not read) the plain
reader of :mod:`scibind_spatial_omics.visium` loads the image whole. On a file both can read, a patch
taken at full resolution has the same pixels either way.

``he_reader`` chooses: ``"auto"`` (the slide reader when it applies, else plain), ``"pathology"`` (the
slide reader or an error) or ``"plain"``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from scibind.errors import ConfigError

__all__ = [
    "HE_READERS",
    "open_he_slide",
    "pathology_available",
    "patch_level",
    "slide_geometry",
    "slide_patch",
]

HE_READERS = ("auto", "pathology", "plain")
"""Values of ``he_reader``."""

_PLAIN_SUFFIXES = (".png", ".jpg", ".jpeg")


def pathology_available() -> bool:
    """Whether the pathology plugin (and so OpenSlide) can be imported."""
    try:
        import openslide  # noqa: F401
        import scibind_pathology.slide  # noqa: F401
    except ImportError:
        return False
    return True


def open_he_slide(path: str | Path, *, mpp_um: float, reader: str = "auto") -> Any | None:
    """Open an H&E with ``scibind_pathology.slide.open_slide``, or return ``None`` for the plain reader.

    Args:
        path: The image file.
        mpp_um: µm per full-resolution pixel from the spatial geometry (spot diameter or Xenium alignment);
            used as the slide's unit when the file carries none.
        reader: ``"auto"``, ``"pathology"`` or ``"plain"`` (see the module notes).

    Returns:
        An open ``scibind_pathology.slide.Slide``, or ``None`` when the plain reader applies.

    Raises:
        ConfigError: ``reader`` is unknown, or ``"pathology"`` without the plugin installed.
        ReadError: OpenSlide recognises the file but cannot read it (names the file).
    """
    if reader not in HE_READERS:
        raise ConfigError(f"he_reader must be one of {HE_READERS}, got {reader!r}")
    if reader == "plain":
        return None
    if not pathology_available():
        if reader == "pathology":
            raise ConfigError(
                "he_reader='pathology' needs the pathology plugin (pip install -e ./pathology); "
                "use he_reader='auto' or 'plain' to read the image whole"
            )
        return None
    import openslide
    from scibind_pathology.slide import open_slide

    path = Path(path)
    if reader == "auto":
        if path.suffix.lower() in _PLAIN_SUFFIXES or not path.is_file():
            return None  # plain images: no pyramid to gain; a missing file: the plain reader's error
        try:
            vendor = openslide.OpenSlide.detect_format(str(path))
        except Exception:  # unreadable: let the plain reader report it
            return None
        if vendor is None:
            return None
    return open_slide(path, slide_mpp=mpp_um)


def patch_level(slide: Any, side_px: float, out_px: int, tolerance: float = 0.02) -> int:
    """The coarsest level whose downsample is at most ``side_px / out_px`` (reads only ever shrink).

    Args:
        slide: An open slide.
        side_px: Patch side in level-0 pixels.
        out_px: Side of the patch written.
        tolerance: Relative slack on the downsample.
    """
    wanted = side_px / out_px
    best = 0
    for level in slide.levels:
        if level.downsample <= wanted * (1.0 + tolerance):
            best = level.index
    return best


def slide_patch(
    slide: Any, top: int, left: int, side: int, out_px: int, level: int | None = None
) -> np.ndarray:
    """RGB ``uint8[out_px, out_px, 3]`` of the level-0 square ``(top, left, side)`` (as the plain path).

    The square is read at ``level`` (default :func:`patch_level`) as ``side / downsample`` pixels, white
    outside the slide, then box-filtered (or, when enlarging, nearest-neighbour resized) to ``out_px``.

    Args:
        slide: An open ``scibind_pathology.slide.Slide``.
        top: Level-0 row of the square's upper edge (may be negative).
        left: Level-0 column of its left edge (may be negative).
        side: Side in level-0 pixels.
        out_px: Side of the result.
        level: Pyramid level to read.
    """
    from PIL import Image

    level = patch_level(slide, side, out_px) if level is None else level
    size = max(1, round(side / slide.levels[level].downsample))
    region = slide.read_region(left, top, level, (size, size))
    if size == out_px:
        return np.ascontiguousarray(region)
    resample = Image.Resampling.BOX if size > out_px else Image.Resampling.NEAREST
    return np.asarray(Image.fromarray(region).resize((out_px, out_px), resample))


def slide_geometry(slide: Any, side_px: float, out_px: int) -> dict[str, Any]:
    """What the patch record keeps of a slide: vendor, its own µm/px and the pyramid level read.

    Args:
        slide: An open slide.
        side_px: Patch side in level-0 pixels.
        out_px: Side of the patch written.
    """
    level = patch_level(slide, max(1, round(side_px)), out_px)
    return {
        "slide_vendor": slide.vendor,
        "slide_mpp": round(float(slide.mpp), 6),
        "slide_mpp_source": slide.mpp_source,
        "slide_levels": len(slide.levels),
        "slide_level_read": level,
        "slide_level_downsample": float(slide.levels[level].downsample),
    }
