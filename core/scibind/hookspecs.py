"""Every hook a scibind plugin can implement.

A plugin is a module (found through the ``scibind`` entry-point group, or registered directly) with
functions decorated by :data:`scibind.hookimpl` and named like the specs below. Registration hooks receive a
``register`` callback: call it once per contribution with a spec from :mod:`scibind.registry`. The core
stamps each contribution with the plugin and distribution, prefixes bare names with ``"<plugin>/"`` and
rejects duplicates. A hook that raises is reported by ``scibind plugins`` and its plugin is skipped.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pluggy

from scibind.registry import ComponentSpec, ReaderSpec

__all__ = ["hookimpl", "hookspec"]

hookspec = pluggy.HookspecMarker("scibind")
hookimpl = pluggy.HookimplMarker("scibind")

Register = Callable[[ComponentSpec], ComponentSpec]


@hookspec
def scibind_register_modalities(register: Register) -> None:
    """Register modalities (named kinds of data).

    Called once when plugins load. Call ``register(ModalitySpec(name=..., sample_type=..., collate=...))``
    for each modality. Modality names are shared by every plugin and are not prefixed.

    Args:
        register: Callback taking a :class:`scibind.registry.ModalitySpec`.
    """


@hookspec
def scibind_register_readers(register: Register) -> None:
    """Register readers that turn files, folders or manifest values into samples.

    Called once when plugins load. Call ``register(ReaderSpec(name=..., modality=..., factory="mod:attr",
    patterns=("*.svs",), requires=("openslide-python",)))``.

    Args:
        register: Callback taking a :class:`scibind.registry.ReaderSpec`.
    """


@hookspec
def scibind_register_encoders(register: Register) -> None:
    """Register encoders (``nn.Module`` with ``modality``, ``embed_dim``, ``forward(batch) -> [B, D]``).

    Called once when plugins load. Every encoder family should also register a ``*/tiny`` variant that runs
    on CPU in seconds, for tests.

    Args:
        register: Callback taking a :class:`scibind.registry.EncoderSpec`.
    """


@hookspec
def scibind_register_objectives(register: Register) -> None:
    """Register objectives (losses over a dict of modality embeddings plus presence masks).

    Called once when plugins load.

    Args:
        register: Callback taking a :class:`scibind.registry.ObjectiveSpec`.
    """


@hookspec
def scibind_register_heads(register: Register) -> None:
    """Register downstream heads and evaluation tasks that consume embeddings only.

    Called once when plugins load.

    Args:
        register: Callback taking a :class:`scibind.registry.HeadSpec`.
    """


@hookspec
def scibind_register_model_configs(register: Register) -> None:
    """Register recipes: YAML files composing towers, an objective, data, optimizer and evaluation.

    Called once when plugins load. Mark the plugin's demo recipe with ``demo=True`` so ``scibind demo`` runs
    it.

    Args:
        register: Callback taking a :class:`scibind.registry.RecipeSpec`.
    """


@hookspec
def scibind_register_datasets(register: Register) -> None:
    """Register example or benchmark datasets (generators writing real files and a manifest).

    Called once when plugins load.

    Args:
        register: Callback taking a :class:`scibind.registry.DatasetSpec`.
    """


@hookspec
def scibind_register_commands(cli: Any) -> None:
    """Add commands to the ``scibind`` command line.

    Called when the CLI starts. ``cli`` is the root :class:`typer.Typer`; add commands with
    ``@cli.command()`` or groups with ``cli.add_typer(...)``. Import heavy libraries inside the command.

    Args:
        cli: The root ``typer.Typer`` application.
    """


@hookspec(firstresult=True)
def scibind_choose_reader(
    path: str, modality: str | None, candidates: Sequence[ReaderSpec]
) -> ReaderSpec | None:
    """Settle which reader opens a path that several readers claim.

    Called by reader resolution when more than one reader's pattern matches ``path`` (a ``.tif`` may be a
    slide or a Cell Painting field). The first non-``None`` answer wins; when every plugin returns ``None``
    the candidate with the highest ``priority`` is used.

    Args:
        path: The file or folder being opened.
        modality: The modality the caller wants, or ``None`` when any will do.
        candidates: The claiming readers, highest priority first.

    Returns:
        One of ``candidates``, or ``None`` to abstain.
    """
