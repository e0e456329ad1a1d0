"""``--set key=value`` overrides of ``scibind prepare``: reader options and manifest view modalities."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from scibind.errors import ConfigError
from scibind.train.overrides import parse_override

__all__ = ["PrepareOptions", "parse_overrides"]

FORMS = (
    "'reader.<reader>.<option>=<value>' (e.g. reader.core/image.max_side=512), "
    "'<group>.<option>=<value>' for readers that take an option group (e.g. tiling.mpp=0.5) or "
    "'views.<column>=<modality or reader>' (e.g. views.caption=text, views.cells=cell_painting/cell)"
)


@dataclass(frozen=True)
class PrepareOptions:
    """Parsed overrides.

    Attributes:
        reader_kwargs: Reader name (as written; bare names are resolved later) -> keyword arguments
            passed to its factory.
        views: Manifest column (or ``<view>`` of a ``<view>.<field>`` group) -> modality, or a reader name
            (``plugin/name``: that reader reads every value of the column). When empty, every column named
            after a registered modality is a view of that modality.
        groups: Option group (``tiling``) -> options, passed to every reader whose spec lists that group in
            ``option_groups``.
    """

    reader_kwargs: dict[str, dict[str, Any]] = field(default_factory=dict)
    views: dict[str, str] = field(default_factory=dict)
    groups: dict[str, dict[str, Any]] = field(default_factory=dict)


def parse_overrides(pairs: list[str] | tuple[str, ...]) -> PrepareOptions:
    """Parse ``--set`` arguments.

    Args:
        pairs: ``key=value`` strings; see :data:`FORMS` for the accepted keys.

    Returns:
        The parsed :class:`PrepareOptions`.

    Raises:
        ConfigError: A pair has no ``=`` or an unknown key.
    """
    reader_kwargs: dict[str, dict[str, Any]] = {}
    views: dict[str, str] = {}
    groups: dict[str, dict[str, Any]] = {}
    for pair in pairs:
        keys, value = parse_override(pair)
        if keys[0] == "reader" and len(keys) >= 3 and keys[-1].isidentifier():
            reader_kwargs.setdefault(".".join(keys[1:-1]), {})[keys[-1]] = value
        elif keys[0] == "views" and len(keys) >= 2:
            if not isinstance(value, str) or not value:
                raise ConfigError(
                    f"--set {pair!r}: give the modality (or reader) of column {'.'.join(keys[1:])!r} as text"
                )
            views[".".join(keys[1:])] = value
        elif len(keys) == 2 and keys[1].isidentifier():
            groups.setdefault(keys[0], {})[keys[1]] = value
        else:
            raise ConfigError(f"--set {pair!r}: unknown key; use {FORMS}")
    return PrepareOptions(reader_kwargs=reader_kwargs, views=views, groups=groups)
