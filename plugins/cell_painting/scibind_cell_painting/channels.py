"""Channel names of Cell Painting: one vocabulary, so models never depend on the order of files.

The five Cell Painting stains plus brightfield have canonical names (:data:`CHANNELS`). Acquisition software
and papers use many aliases (``Hoechst``, ``DAPI``, ``ConA``, ``SYTO14``, ``Phalloidin``, ``MitoTracker``,
``OrigDNA`` ...); :func:`canonical_channel` maps them to the canonical name, and :func:`channel_index` to
the position in :data:`CHANNELS` that channel embeddings are indexed by.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from scibind.errors import ConfigError, ReadError

__all__ = [
    "CHANNELS",
    "CELL_PAINTING_CHANNELS",
    "canonical_channel",
    "channel_index",
    "channel_map_from_cellprofiler",
    "parse_channel_map",
]

CHANNELS: tuple[str, ...] = ("DNA", "ER", "RNA", "AGP", "Mito", "Brightfield")
"""Canonical channel names; a channel's index here is its id in every model."""

CELL_PAINTING_CHANNELS: tuple[str, ...] = CHANNELS[:5]
"""The five fluorescent Cell Painting channels."""

_ALIASES: dict[str, str] = {
    "dna": "DNA",
    "hoechst": "DNA",
    "dapi": "DNA",
    "nuclei": "DNA",
    "er": "ER",
    "cona": "ER",
    "concanavalin": "ER",
    "rna": "RNA",
    "syto14": "RNA",
    "nucleoli": "RNA",
    "agp": "AGP",
    "actin": "AGP",
    "phalloidin": "AGP",
    "wga": "AGP",
    "golgi": "AGP",
    "mito": "Mito",
    "mitotracker": "Mito",
    "mitochondria": "Mito",
    "brightfield": "Brightfield",
    "bf": "Brightfield",
    "phase": "Brightfield",
}


def canonical_channel(name: str) -> str:
    """The canonical name of a channel (case-insensitive; CellProfiler ``Orig``/``Corr``/``Illum`` prefixes).

    Args:
        name: A channel name such as ``"dna"``, ``"Hoechst"``, ``"OrigMito"`` or ``"Brightfield_high"``.

    Raises:
        ConfigError: The name is not a Cell Painting channel or a known alias.
    """
    key = re.sub(r"^(orig|corr|illum)", "", str(name).strip().lower())
    key = re.sub(r"[\s_\-]+", "", key)
    if key in _ALIASES:
        return _ALIASES[key]
    for alias, canonical in _ALIASES.items():
        if len(alias) > 2 and key.startswith(alias):  # "brightfieldhigh", "mitotracker640"
            return canonical
    raise ConfigError(
        f"unknown channel name {name!r}; use one of {list(CHANNELS)} or an alias "
        f"({', '.join(sorted(a for a in _ALIASES if a != _ALIASES[a].lower()))})"
    )


def channel_index(name: str) -> int:
    """Position of a channel in :data:`CHANNELS` (its id for channel embeddings)."""
    return CHANNELS.index(canonical_channel(name))


def parse_channel_map(channel_map: Mapping[str | int, str]) -> dict[str, str]:
    """Normalise a channel map ``{file channel token: channel name}`` to ``{str token: canonical name}``.

    Raises:
        ConfigError: A name is unknown, or two tokens map to the same channel.
    """
    out: dict[str, str] = {}
    seen: dict[str, str] = {}
    for token, name in channel_map.items():
        canonical = canonical_channel(name)
        key = str(token).lstrip("0") or "0"
        if canonical in seen:
            raise ConfigError(
                f"channel map gives {canonical!r} to both channel {seen[canonical]!r} and {key!r}; "
                "each channel name may appear once"
            )
        seen[canonical] = key
        out[key] = canonical
    return out


def channel_map_from_cellprofiler(path: str | Path) -> dict[str, str]:
    """Read the channel map of a field from CellProfiler's ``Image_FileName_Orig<Channel>`` columns.

    CellProfiler outputs (single-cell Parquet/CSV, ``Image.csv``) record which file held which stain. The
    file names are parsed with the Harmony and JUMP patterns of :mod:`scibind_cell_painting.naming`.

    Args:
        path: A ``.parquet``, ``.csv`` or ``.csv.gz`` table with ``Image_FileName_Orig*`` columns.

    Returns:
        ``{channel token: canonical name}``, e.g. ``{"5": "DNA", "2": "ER", ...}``.

    Raises:
        ReadError: The table cannot be read, has no such columns, or a file name matches no pattern.
    """
    import pandas as pd

    from scibind_cell_painting.naming import parse_image_name

    path = Path(path)
    try:
        frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path, nrows=5)
    except Exception as exc:  # pyarrow and pandas raise many kinds
        raise ReadError(f"cannot read the table ({type(exc).__name__}: {exc})", path=path) from exc
    columns = [c for c in frame.columns if str(c).startswith("Image_FileName_Orig")]
    if not columns:
        raise ReadError(
            "no Image_FileName_Orig<Channel> columns; pass the channel map explicitly instead", path=path
        )
    mapping: dict[str, str] = {}
    for column in columns:
        filename = str(frame[column].iloc[0])
        parsed = parse_image_name(filename)
        if parsed is None:
            raise ReadError(f"{column} = {filename!r} matches no known file-name pattern", path=path)
        mapping[parsed.channel] = column[len("Image_FileName_Orig") :]
    return parse_channel_map(mapping)
