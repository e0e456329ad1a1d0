"""Group per-channel image files into fields of view and write them as manifest rows.

A *field* (site) is one position in one well of one plate, imaged in several channels, usually one file
per channel. :func:`discover_fields` parses file names (:mod:`scibind_cell_painting.naming`), names the
channels with a channel map (:mod:`scibind_cell_painting.channels`) and groups the files; :func:`fields_frame`
turns the fields into manifest columns ``<view>.<Channel>`` (plus ``<view>.illum_<Channel>`` for
illumination functions) that :class:`scibind_cell_painting.reader.FieldReader` reads.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from scibind.errors import ConfigError, DataError

from scibind_cell_painting.channels import CHANNELS, canonical_channel, parse_channel_map
from scibind_cell_painting.naming import parse_image_name

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Field", "discover_fields", "fields_frame", "find_illumination"]

IMAGE_SUFFIXES = (".tif", ".tiff")


@dataclass
class Field:
    """One field of view: its position and one file per channel.

    Attributes:
        plate: Plate barcode.
        well: Well name (``"C03"``).
        site: Site number within the well.
        channels: Canonical channel name -> image file.
        illumination: Canonical channel name -> illumination function (``.npy``), when known.
    """

    plate: str
    well: str
    site: int
    channels: dict[str, Path] = field(default_factory=dict)
    illumination: dict[str, Path] = field(default_factory=dict)

    @property
    def id(self) -> str:
        """Record id ``<plate>_<well>_s<site>``."""
        return f"{self.plate}_{self.well}_s{self.site}"

    def missing(self, expected: Sequence[str]) -> list[str]:
        """Channels of ``expected`` that have no file."""
        return [c for c in expected if c not in self.channels]


def find_illumination(folder: str | Path, plate: str | None = None) -> dict[str, Path]:
    """Illumination functions in CellProfiler's naming, ``[<plate>_]Illum<Channel>.npy``, per channel.

    Args:
        folder: Folder holding the ``.npy`` files.
        plate: Prefer files named for this plate when several plates share the folder.

    Raises:
        ConfigError: The folder does not exist or two files claim one channel of the plate.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"illumination folder {folder} does not exist")
    found: dict[str, Path] = {}
    for path in sorted(folder.glob("*.npy")):
        match = re.fullmatch(r"(?:(?P<plate>.+)_)?Illum(?P<channel>[A-Za-z0-9]+)\.npy", path.name)
        if match is None:
            continue
        if plate is not None and match.group("plate") not in (None, plate):
            continue
        channel = canonical_channel(match.group("channel"))
        if channel in found:
            raise ConfigError(f"two illumination files for {channel}: {found[channel].name}, {path.name}")
        found[channel] = path
    return found


def discover_fields(
    folder: str | Path,
    channel_map: Mapping[str | int, str],
    *,
    patterns: Sequence[str] = ("harmony", "jump"),
    plate: str | None = None,
    plane: int | None = None,
    illumination_dir: str | Path | None = None,
) -> list[Field]:
    """Find the image files under ``folder`` and group them into fields.

    Args:
        folder: Folder searched recursively for ``.tif``/``.tiff`` files.
        channel_map: File channel token -> channel name (``{1: "Brightfield", 5: "DNA", ...}``); tokens not
            in the map are an error, so a new channel is never silently dropped.
        patterns: File-name presets or regular expressions (see :mod:`scibind_cell_painting.naming`).
        plate: Plate barcode for names without one (default: the name of the folder holding the file).
        plane: Keep only this focal plane when names carry several.
        illumination_dir: Folder of ``[<plate>_]Illum<Channel>.npy`` files (per plate).

    Returns:
        The fields, sorted by plate, well and site.

    Raises:
        DataError: No image matches, a channel token is unmapped, two files claim one channel of one field,
            or several planes are present and ``plane`` is not set. Messages name the files.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"image folder {folder} does not exist")
    names = parse_channel_map(channel_map)
    fields: dict[tuple[str, str, int], Field] = {}
    planes: set[int] = set()
    unmatched: list[str] = []
    for path in sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES):
        parsed = parse_image_name(path.name, patterns)
        if parsed is None:
            unmatched.append(path.name)
            continue
        if parsed.plane is not None:
            planes.add(parsed.plane)
            if plane is not None and parsed.plane != plane:
                continue
        if parsed.channel not in names:
            raise DataError(
                f"{path}: channel {parsed.channel} is not in the channel map {names}; add it "
                f"(channel names: {list(CHANNELS)})"
            )
        key = (parsed.plate or plate or path.parent.name, parsed.well, parsed.site)
        entry = fields.setdefault(key, Field(*key))
        channel = names[parsed.channel]
        if channel in entry.channels:
            raise DataError(
                f"two files for channel {channel} of field {entry.id}: {entry.channels[channel]} and {path}"
                + ("; set plane=... to pick one focal plane" if len(planes) > 1 else "")
            )
        entry.channels[channel] = path
    if plane is None and len(planes) > 1:
        raise DataError(f"{folder}: images of focal planes {sorted(planes)}; set plane=... to pick one")
    if not fields:
        hint = f" (e.g. {unmatched[:3]} do not match)" if unmatched else ""
        raise DataError(f"{folder}: no image file matches the patterns {list(patterns)}{hint}")
    result = [fields[k] for k in sorted(fields)]
    if illumination_dir is not None:
        for item in result:
            item.illumination = find_illumination(illumination_dir, item.plate)
    return result


def fields_frame(
    fields: Sequence[Field], view: str = "cells", relative_to: str | Path | None = None
) -> pd.DataFrame:
    """Manifest columns of ``fields``: id, plate, well, site, ``<view>.<Channel>`` and ``<view>.illum_*``.

    A channel missing from a field leaves an empty cell, which the reader reports naming the field (and
    ``scibind prepare`` quarantines).

    Args:
        fields: From :func:`discover_fields`.
        view: The view name the recipe's tower uses.
        relative_to: Write paths relative to this folder (the manifest's), else absolute.
    """
    import pandas as pd

    channels = [c for c in CHANNELS if any(c in f.channels for f in fields)]
    illum = [c for c in CHANNELS if any(c in f.illumination for f in fields)]
    base = Path(relative_to).resolve() if relative_to is not None else None

    def show(path: Path | None) -> str | None:
        if path is None:
            return None
        path = path.resolve()
        if base is not None:
            try:
                return path.relative_to(base).as_posix()
            except ValueError:
                return str(path)
        return str(path)

    rows = []
    for item in fields:
        row: dict[str, object] = {"id": item.id, "plate": item.plate, "well": item.well, "site": item.site}
        for channel in channels:
            row[f"{view}.{channel}"] = show(item.channels.get(channel))
        for channel in illum:
            row[f"{view}.illum_{channel}"] = show(item.illumination.get(channel))
        rows.append(row)
    return pd.DataFrame(rows)
