"""File-name patterns of high-content screening images: which plate, well, site and channel a file holds.

Presets:

- ``harmony``: PerkinElmer Harmony / Opera Phenix / Operetta exports, ``r03c03f03p01-ch1sk1fk1fl1.tiff``
  (row 3, column 3, field 3, plane 1, channel 1).
- ``jump``: MetaXpress / Cell Painting Gallery style, ``{well}_s{site}_w{channel}`` with an optional
  ``<plate>_`` prefix and suffix (``BR00116991_A01_s1_w1A1B2.tif``).

A custom pattern is a regular expression with named groups: ``channel`` and ``site`` (required), ``well``
or both ``row`` and ``col``, and optionally ``plate`` and ``plane``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from scibind.errors import ConfigError

__all__ = ["PATTERNS", "ImageName", "compile_pattern", "parse_image_name", "parse_well", "well_name"]

PATTERNS: dict[str, str] = {
    "harmony": r"r(?P<row>\d{2})c(?P<col>\d{2})f(?P<site>\d{2,})p(?P<plane>\d{2})-ch(?P<channel>\d+)"
    r"sk\d+fk\d+fl\d+\.tiff?",
    "jump": r"(?:(?P<plate>[^_]+)_)?(?P<well>[A-Za-z]{1,2}\d{1,2})_s(?P<site>\d+)_w(?P<channel>\d+)"
    r"(?:[^0-9.][^.]*)?\.tiff?",
}
"""Preset file-name patterns (full matches, case-insensitive)."""

_ROWS = [chr(ord("A") + i) for i in range(26)] + ["A" + chr(ord("A") + i) for i in range(6)]


@dataclass(frozen=True)
class ImageName:
    """What a file name says about an image.

    Attributes:
        well: Well name, letter row and two-digit column (``"C03"``).
        site: Field of view (site) number within the well.
        channel: The channel token of the file (``"1"``), before the channel map names it.
        plate: Plate barcode, when the name carries one.
        plane: Focal plane (z) number, when the name carries one.
    """

    well: str
    site: int
    channel: str
    plate: str | None = None
    plane: int | None = None


def well_name(row: int, col: int) -> str:
    """``(3, 3)`` -> ``"C03"`` (rows 1-32 -> ``A``-``Z``, ``AA``-``AF``; 1-based).

    Raises:
        ConfigError: Row or column out of range.
    """
    if not 1 <= row <= len(_ROWS) or not 1 <= col <= 99:
        raise ConfigError(f"well row {row} / column {col} out of range (rows 1-32, columns 1-99)")
    return f"{_ROWS[row - 1]}{col:02d}"


def parse_well(well: str) -> tuple[int, int]:
    """``"C03"`` or ``"c3"`` -> ``(3, 3)`` (1-based row, column).

    Raises:
        ConfigError: Not a well name.
    """
    match = re.fullmatch(r"([A-Za-z]{1,2})0*(\d{1,2})", str(well).strip())
    if match is None or match.group(1).upper() not in _ROWS or int(match.group(2)) < 1:
        raise ConfigError(f"{well!r} is not a well name such as 'C03'")
    return _ROWS.index(match.group(1).upper()) + 1, int(match.group(2))


def compile_pattern(pattern: str) -> re.Pattern[str]:
    """A preset name or a regular expression -> compiled pattern, checked for the required groups.

    Raises:
        ConfigError: The regex is invalid or lacks ``channel``, ``site`` or a well (``well`` or
            ``row`` + ``col``).
    """
    source = PATTERNS.get(pattern, pattern)
    try:
        compiled = re.compile(source, re.IGNORECASE)
    except re.error as exc:
        raise ConfigError(f"file-name pattern {pattern!r} is not a valid regular expression ({exc})") from exc
    groups = set(compiled.groupindex)
    missing = [g for g in ("channel", "site") if g not in groups]
    if "well" not in groups and not {"row", "col"} <= groups:
        missing.append("well (or row and col)")
    if missing:
        raise ConfigError(
            f"file-name pattern {pattern!r} lacks the named group(s) {missing}; presets: {sorted(PATTERNS)}"
        )
    return compiled


def parse_image_name(name: str, patterns: Sequence[str] = ("harmony", "jump")) -> ImageName | None:
    """Parse a file name (not a path) with the first pattern that fully matches it.

    Args:
        name: The file name, e.g. ``"r03c03f03p01-ch1sk1fk1fl1.tiff"``.
        patterns: Preset names or regular expressions, tried in order.

    Returns:
        The parsed :class:`ImageName`, or ``None`` when no pattern matches.
    """
    for pattern in patterns:
        match = compile_pattern(pattern).fullmatch(name)
        if match is None:
            continue
        parts = match.groupdict()
        if parts.get("well"):
            row, col = parse_well(parts["well"])
        else:
            row, col = int(parts["row"]), int(parts["col"])
        plane = parts.get("plane")
        return ImageName(
            well=well_name(row, col),
            site=int(parts["site"]),
            channel=parts["channel"].lstrip("0") or "0",
            plate=parts.get("plate") or None,
            plane=int(plane) if plane else None,
        )
    return None
