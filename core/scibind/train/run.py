"""A trained run read back from its folder, and the datasets a recipe describes.

These are the pieces ``scibind evaluate``, ``scibind embed`` and the trainer share:
:func:`load_run` (recipe + weights of a checkpoint), :func:`build_dataset` (the paired dataset of a
recipe's train or eval split, or of any manifest) and :func:`text_encoder_fn` (prompts -> joint space).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from scibind.atomic import atomic_write_json
from scibind.errors import CheckpointError, ConfigError
from scibind.train.checkpoint import checkpoint_path, latest_checkpoint, list_checkpoints, load_model_state
from scibind.train.recipe import Recipe, load_recipe

if TYPE_CHECKING:
    import torch

    from scibind.align.model import MultiTowerModel
    from scibind.data.dataset import PairedDataset, ViewConfig

__all__ = [
    "CONFIG_FILE",
    "TrainedRun",
    "build_dataset",
    "build_objective",
    "load_run",
    "materialize_data",
    "text_encoder_fn",
]

CONFIG_FILE = "config.yaml"
DATA_DIR = "data"
DATASET_RECORD = "dataset.json"


@dataclass
class TrainedRun:
    """A run folder's recipe and the weights of one of its checkpoints.

    Attributes:
        recipe: The resolved recipe from ``config.yaml``.
        model: The multi-tower model, in eval mode, on CPU.
        objective: The objective with its trained parameters (temperature, bias).
        step: The checkpoint's step.
        run_dir: The run folder.
    """

    recipe: Recipe
    model: MultiTowerModel
    objective: torch.nn.Module
    step: int
    run_dir: Path


def build_objective(recipe: Recipe) -> torch.nn.Module:
    """The recipe's objective (``objective.name`` with ``pairs`` and ``kwargs``)."""
    from scibind.api import create_objective

    kwargs: dict[str, Any] = dict(recipe.objective.kwargs)
    if recipe.objective.pairs is not None:
        kwargs["pairs"] = [tuple(pair) for pair in recipe.objective.pairs]
    return create_objective(recipe.objective.name, **kwargs)


def load_run(run_dir: str | Path, step: int | None = None) -> TrainedRun:
    """Rebuild a trained model from ``run_dir/config.yaml`` and a checkpoint (no optimizer state).

    Args:
        run_dir: A folder written by ``scibind train``.
        step: The checkpoint step to load; ``None`` = the newest complete one.

    Raises:
        ConfigError: ``run_dir`` has no ``config.yaml``.
        CheckpointError: No complete checkpoint (or none at ``step``), or it is corrupt or does not fit.
    """
    from scibind.align.model import build_model

    run_dir = Path(run_dir)
    config = run_dir / CONFIG_FILE
    if not config.is_file():
        raise ConfigError(
            f"{run_dir} is not a run folder: {CONFIG_FILE} is missing; pass the --run-dir of `scibind train`"
        )
    recipe = load_recipe(config)
    if step is None:
        ckpt = latest_checkpoint(run_dir)
        if ckpt is None:
            raise CheckpointError(
                f"{run_dir} has no complete checkpoint under checkpoints/; train (or resume) first"
            )
    else:
        ckpt = checkpoint_path(run_dir, step)
        if not ckpt.exists():
            steps = [s for s, _ in list_checkpoints(run_dir)]
            raise CheckpointError(f"{ckpt} does not exist; complete checkpoints of this run: steps {steps}")
    model = build_model(tower_configs(recipe), recipe.embed_dim)
    objective = build_objective(recipe)
    info = load_model_state(ckpt, model, objective)
    model.eval()
    objective.eval()
    return TrainedRun(recipe, model, objective, step=int(info["step"]), run_dir=run_dir)


def tower_configs(recipe: Recipe) -> dict[str, dict[str, Any]]:
    """The recipe's towers as the plain mappings :func:`scibind.align.model.build_model` takes.

    Reader options are left out: they configure the dataset (:func:`view_configs`), not the model; so are
    ``freeze``, a training strategy (:mod:`scibind.train.strategies`), and the learning-rate scales
    (optimizer settings, :func:`scibind.train.trainer.parameter_groups`).
    """
    not_model = {"reader", "reader_kwargs", "freeze", "lr_scale", "encoder_lr_scale"}
    return {view: tower.model_dump(exclude=not_model) for view, tower in recipe.towers.items()}


def build_dataset(
    recipe: Recipe,
    which: Literal["train", "eval"] = "train",
    manifest: str | Path | None = None,
    run_dir: str | Path | None = None,
) -> PairedDataset:
    """The paired dataset of the recipe's train or eval split, or of another manifest.

    Args:
        recipe: The recipe (its towers name the views, ``data.labels`` the label columns).
        which: ``"train"`` (``data.train``, split ``data.train_split``) or ``"eval"`` (``data.eval`` or else
            ``data.train``, split ``data.eval_split``).
        manifest: Use this manifest instead; its ``which`` split is used when it has a ``split`` column,
            otherwise every record.
        run_dir: Run folder holding a generated dataset (``data.dataset``) when the recipe names no path.

    Raises:
        ConfigError: No manifest can be found.
        DataError: The manifest lacks a view or label column, or the split is empty.
    """
    from scibind.data.dataset import PairedDataset
    from scibind.data.manifest import read_manifest

    split = recipe.data.train_split if which == "train" else recipe.data.eval_split
    if manifest is not None:
        loaded = read_manifest(manifest)
        if loaded.splits:
            loaded = loaded.select(split)
    else:
        generated = recipe.data.dataset is not None
        converted = generated and _accepts_files(recipe.data.dataset)
        missing = recipe.data.train is None or (which == "eval" and recipe.data.eval is None and generated)
        if converted or missing:
            if run_dir is None:
                raise ConfigError(
                    f"recipe {recipe.name!r} generates its data (data.dataset={recipe.data.dataset!r}); pass "
                    "the run folder it was generated into, or set data.train / data.eval"
                )
            recipe = materialize_data(recipe, Path(run_dir), generate=False)
        path = recipe.data.train if which == "train" else (recipe.data.eval or recipe.data.train)
        if path is None:
            raise ConfigError(
                f"recipe {recipe.name!r} has no data.{which} manifest; set it with --set data.{which}=PATH"
            )
        loaded = read_manifest(path).select(split)
    return PairedDataset(loaded, view_configs(recipe), labels=recipe.data.labels)


def view_configs(recipe: Recipe) -> dict[str, ViewConfig]:
    """How each tower's view is read: its modality and reader, with ``reader_kwargs`` applied.

    Raises:
        ConfigError: The named reader produces another modality than the tower's.
    """
    from scibind.api import create_reader, get_spec
    from scibind.data.dataset import ViewConfig, default_reader

    configs = {}
    for view, tower in recipe.towers.items():
        modality = recipe.modality_of(view)
        if tower.reader is None:
            reader = default_reader(modality, **tower.reader_kwargs)
        else:
            spec = get_spec("readers", tower.reader)
            if spec.modality != modality:
                raise ConfigError(
                    f"towers.{view}.reader: {spec.name!r} reads modality {spec.modality!r}, but the tower's "
                    f"modality is {modality!r}; pick a reader of {modality!r} (`scibind list readers`)"
                )
            reader = create_reader(spec.name, **tower.reader_kwargs)
        configs[view] = ViewConfig(view, modality, reader)
    return configs


def materialize_data(recipe: Recipe, run_dir: Path, *, generate: bool = True) -> Recipe:
    """Fill in ``data.train`` / ``data.eval`` from the recipe's dataset generator.

    The dataset is generated once into ``<run_dir>/data/`` (a ``dataset.json`` there records the generator,
    its arguments and the manifest, so a resumed run reuses it) and used for whichever of ``data.train`` and
    ``data.eval`` the recipe leaves empty. Without a generator, an empty ``data.eval`` means ``data.train``.
    A converting dataset (``DatasetSpec.accepts_files``) instead turns the user's ``data.train`` /
    ``data.eval`` files into one manifest with both splits.

    Args:
        recipe: The recipe.
        run_dir: The run folder.
        generate: Generate the dataset when it is missing (only one process should); otherwise raise.

    Returns:
        A copy of the recipe with both manifest paths set.

    Raises:
        ConfigError: ``generate=False`` and the dataset was not generated into ``run_dir``.
    """
    recipe = recipe.model_copy(deep=True)
    data = recipe.data
    user_files = data.train is not None or data.eval is not None
    if data.dataset is not None and user_files and _accepts_files(data.dataset):
        return _convert_files(recipe, run_dir, generate=generate)
    if data.dataset is not None and (data.train is None or data.eval is None):
        folder = run_dir / DATA_DIR
        wanted = {"name": data.dataset, "kwargs": data.dataset_kwargs}
        manifest = _generated_manifest(folder, wanted)
        if manifest is None:
            if not generate:
                raise ConfigError(
                    f"{folder} holds no dataset generated by {data.dataset!r} with {data.dataset_kwargs}; "
                    "run `scibind train` with this --run-dir first, or set data.train / data.eval"
                )
            from scibind.api import create_dataset

            manifest = Path(create_dataset(data.dataset, folder, **data.dataset_kwargs)).resolve()
            atomic_write_json(folder / DATASET_RECORD, {**wanted, "manifest": _relative(manifest, folder)})
        data.train = data.train or manifest
        data.eval = data.eval or manifest
    if data.eval is None:
        data.eval = data.train
    return recipe


def _accepts_files(dataset: str) -> bool:
    from scibind.api import get_spec

    return bool(getattr(get_spec("datasets", dataset), "accepts_files", False))


def _convert_files(recipe: Recipe, run_dir: Path, *, generate: bool) -> Recipe:
    """Convert the user's ``data.train`` / ``data.eval`` files with a converting dataset (``accepts_files``).

    The converter writes one manifest into ``<run_dir>/data/`` (reused while the files and arguments stay
    the same); the returned recipe reads both splits from it and names no generator any more, so the
    ``config.yaml`` of the run is an ordinary manifest recipe.
    """
    data = recipe.data
    if data.train is None:
        raise ConfigError(
            f"data.eval is set but data.train is not; {data.dataset!r} converts data.train (and optionally "
            "data.eval) into a manifest: set --set data.train=PATH"
        )
    files = {"train": str(data.train), "eval": None if data.eval is None else str(data.eval)}
    kwargs = {**data.dataset_kwargs, **files}
    folder = run_dir / DATA_DIR
    wanted = {"name": data.dataset, "kwargs": kwargs}
    manifest = _generated_manifest(folder, wanted)
    if manifest is None:
        if not generate:
            raise ConfigError(
                f"{folder} holds no manifest converted by {data.dataset!r} from {files}; run `scibind train` "
                "with this --run-dir first"
            )
        from scibind.api import create_dataset

        manifest = Path(create_dataset(data.dataset, folder, **kwargs)).resolve()
        atomic_write_json(folder / DATASET_RECORD, {**wanted, "manifest": _relative(manifest, folder)})
    data.dataset, data.dataset_kwargs = None, {}
    data.train = data.eval = manifest
    return recipe


def _generated_manifest(folder: Path, wanted: dict[str, Any]) -> Path | None:
    record_path = folder / DATASET_RECORD
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    same_kwargs = record.get("kwargs") == json.loads(json.dumps(wanted["kwargs"]))
    if record.get("name") != wanted["name"] or not same_kwargs:
        return None
    manifest = (folder / record["manifest"]).resolve()
    return manifest if manifest.is_file() else None


def _relative(path: Path, base: Path) -> str:
    try:
        return path.resolve().relative_to(base.resolve()).as_posix()
    except ValueError:
        return str(path)


def text_encoder_fn(run: TrainedRun) -> tuple[Callable[[list[str]], torch.Tensor] | None, str | None]:
    """A function embedding prompts with the run's text tower, and that tower's view.

    Returns:
        ``(encode_text, view)`` where ``encode_text(prompts) -> float32[K, D]`` (L2-normalised rows, no
        gradients, on the model's device); ``(None, None)`` when no tower has modality ``text``.
    """
    import torch

    views = [view for view in run.recipe.towers if run.recipe.modality_of(view) == "text"]
    if not views:
        return None, None
    view = views[0]
    model = run.model

    def encode_text(prompts: list[str]) -> torch.Tensor:
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                return model.encode(view, list(prompts)).float()
        finally:
            model.train(was_training)

    return encode_text, view
