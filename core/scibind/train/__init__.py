"""Training: recipes, the trainer, checkpoints and resume, multi-process training under ``torchrun``.

``load_recipe`` reads a registered recipe or a YAML file (plus ``--set`` overrides), :func:`train` runs it
into a run folder, :func:`load_run` reads a trained model back.
"""

from __future__ import annotations

from scibind.train.checkpoint import latest_checkpoint, list_checkpoints
from scibind.train.recipe import (
    DataConfig,
    EvalConfig,
    ObjectiveConfig,
    Recipe,
    TowerConfig,
    TrainConfig,
    dump_recipe,
    load_recipe,
)
from scibind.train.run import TrainedRun, build_dataset, load_run, text_encoder_fn
from scibind.train.trainer import StepInfo, TrainResult, train

__all__ = [
    "DataConfig",
    "EvalConfig",
    "ObjectiveConfig",
    "Recipe",
    "StepInfo",
    "TowerConfig",
    "TrainConfig",
    "TrainResult",
    "TrainedRun",
    "build_dataset",
    "dump_recipe",
    "latest_checkpoint",
    "list_checkpoints",
    "load_recipe",
    "load_run",
    "text_encoder_fn",
    "train",
]
