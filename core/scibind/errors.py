"""Exceptions raised by scibind.

Every failure a user can cause (a bad manifest, an unknown name, a missing package, a corrupt checkpoint)
is a :class:`ScibindError` subclass whose message names the file, record or option at fault and says how to
fix it. Library exceptions are wrapped with that context (``raise ... from exc``), never swallowed.
"""

from __future__ import annotations

__all__ = [
    "CheckpointError",
    "ConfigError",
    "DataError",
    "MissingDependencyError",
    "PluginError",
    "ReadError",
    "RegistryError",
    "ScibindError",
    "ShapeError",
    "UnknownNameError",
]


class ScibindError(Exception):
    """Base class of every error scibind raises on purpose."""


class ConfigError(ScibindError):
    """A recipe, option or ``--set`` override is invalid."""


class DataError(ScibindError):
    """A manifest or dataset is malformed (duplicate ids, missing columns, bad split)."""


class ReadError(DataError):
    """A file or record could not be read.

    Attributes:
        path: The file that failed, when there is one.
        record: The record id inside the file, when there is one.
        reason: What is wrong and how to fix it.
    """

    def __init__(self, reason: str, *, path: object | None = None, record: object | None = None) -> None:
        self.path = None if path is None else str(path)
        self.record = None if record is None else str(record)
        self.reason = reason
        where = []
        if self.path is not None:
            where.append(self.path)
        if self.record is not None:
            where.append(f"record {self.record!r}")
        prefix = f"{', '.join(where)}: " if where else ""
        super().__init__(f"{prefix}{reason}")


class ShapeError(ScibindError):
    """Tensors or arrays have shapes that do not fit together."""


class RegistryError(ScibindError):
    """A plugin registered something invalid (bad name, duplicate, malformed factory)."""


class UnknownNameError(RegistryError, KeyError):
    """A modality, reader, encoder, objective, head, dataset or recipe name is not registered."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class MissingDependencyError(ScibindError, ImportError):
    """A registered component needs packages that are not installed; the message has the pip command."""


class PluginError(ScibindError):
    """A plugin failed to load or raised in a hook (fatal only with ``SCIBIND_STRICT_PLUGINS=1``)."""


class CheckpointError(ScibindError):
    """A checkpoint is missing, incomplete or corrupt."""
