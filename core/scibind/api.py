"""Listing and building registered components: ``list_*`` and ``create_*``.

These are the functions re-exported from :mod:`scibind`. They load plugins on first use, check a
component's ``requires`` before importing its factory, and raise :class:`scibind.errors.ScibindError`
subclasses that say what to install or which name was meant.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from scibind.plugins import get_plugin_state
from scibind.registry import (
    SINGULAR,
    ComponentSpec,
    DatasetSpec,
    EncoderSpec,
    HeadSpec,
    ModalitySpec,
    ObjectiveSpec,
    ReaderSpec,
    RecipeSpec,
    Registry,
    resolve_factory,
)

__all__ = [
    "create_dataset",
    "create_encoder",
    "create_head",
    "create_objective",
    "create_reader",
    "get_registry",
    "get_spec",
    "list_datasets",
    "list_encoders",
    "list_heads",
    "list_modalities",
    "list_objectives",
    "list_readers",
    "list_recipes",
]


def get_registry() -> Registry:
    """The registry of every loaded plugin's components."""
    return get_plugin_state().registry


def get_spec(kind: str, name: str) -> Any:
    """The spec of one registered component; ``kind`` is e.g. ``"encoders"``."""
    return get_registry().get(kind, name)


def list_modalities() -> list[ModalitySpec]:
    """Every registered modality."""
    return get_registry().list("modalities")


def list_readers() -> list[ReaderSpec]:
    """Every registered reader."""
    return get_registry().list("readers")


def list_encoders(modality: str | None = None) -> list[EncoderSpec]:
    """Every registered encoder, optionally only those of one modality."""
    return [s for s in get_registry().list("encoders") if modality is None or s.modality == modality]


def list_objectives() -> list[ObjectiveSpec]:
    """Every registered objective."""
    return get_registry().list("objectives")


def list_heads() -> list[HeadSpec]:
    """Every registered head / evaluation task."""
    return get_registry().list("heads")


def list_datasets() -> list[DatasetSpec]:
    """Every registered example dataset."""
    return get_registry().list("datasets")


def list_recipes() -> list[RecipeSpec]:
    """Every registered recipe (model config)."""
    return get_registry().list("recipes")


def _build(kind: str, name: str, *args: Any, **kwargs: Any) -> Any:
    spec: ComponentSpec = get_spec(kind, name)
    spec.check_available()
    factory = resolve_factory(spec.factory, what=f"{SINGULAR[kind]} {spec.name!r}")  # type: ignore[attr-defined]
    return factory(*args, **kwargs)


def create_encoder(name: str, **kwargs: Any) -> Any:
    """Build the encoder registered as ``name`` (an ``nn.Module`` with ``modality`` and ``embed_dim``)."""
    return _build("encoders", name, **kwargs)


def create_objective(name: str, **kwargs: Any) -> Any:
    """Build the objective registered as ``name``.

    The result is an ``nn.Module`` whose ``forward(embeddings, present=None, **targets)`` returns a
    :class:`scibind.align.LossOutput` with ``.loss`` and logged ``.parts``.
    """
    return _build("objectives", name, **kwargs)


def create_reader(name: str, **kwargs: Any) -> Any:
    """Build the reader registered as ``name`` (a :class:`scibind.data.readers.Reader`)."""
    return _build("readers", name, **kwargs)


def create_head(name: str, **kwargs: Any) -> Any:
    """Build the head / evaluation task registered as ``name``."""
    return _build("heads", name, **kwargs)


def create_dataset(name: str, out_dir: str | Path, **kwargs: Any) -> Path:
    """Generate the dataset registered as ``name`` into ``out_dir``; return its manifest path."""
    return Path(_build("datasets", name, Path(out_dir), **kwargs))
