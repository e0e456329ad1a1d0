"""scibind: bind scientific modalities into one embedding space by cross-modal contrastive learning.

The top-level namespace is light (no torch import) so that the command line and plugin discovery start
fast. Heavy pieces live in subpackages: :mod:`scibind.data`, :mod:`scibind.align`, :mod:`scibind.train`,
:mod:`scibind.evaluate`, :mod:`scibind.store`.
"""

from __future__ import annotations

from scibind.api import (
    create_dataset,
    create_encoder,
    create_head,
    create_objective,
    create_reader,
    get_registry,
    get_spec,
    list_datasets,
    list_encoders,
    list_heads,
    list_modalities,
    list_objectives,
    list_readers,
    list_recipes,
)
from scibind.hookspecs import hookimpl
from scibind.plugins import PLUGIN_API_VERSION, load_plugins
from scibind.registry import (
    DatasetSpec,
    EncoderSpec,
    HeadSpec,
    ModalitySpec,
    ObjectiveSpec,
    ReaderSpec,
    RecipeSpec,
)

__version__ = "0.1.0"

__all__ = [
    "PLUGIN_API_VERSION",
    "DatasetSpec",
    "EncoderSpec",
    "HeadSpec",
    "ModalitySpec",
    "ObjectiveSpec",
    "ReaderSpec",
    "RecipeSpec",
    "__version__",
    "create_dataset",
    "create_encoder",
    "create_head",
    "create_objective",
    "create_reader",
    "get_registry",
    "get_spec",
    "hookimpl",
    "list_datasets",
    "list_encoders",
    "list_heads",
    "list_modalities",
    "list_objectives",
    "list_readers",
    "list_recipes",
    "load_plugins",
]
