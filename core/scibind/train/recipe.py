"""Recipes: the validated description of a training run (towers, objective, data, optimisation, evaluation).

A recipe is a YAML file or a registered name (``core/synthetic-clip``; registered through
``scibind_register_model_configs`` with a ``"package:relative/path.yaml"`` source). Every key has a default
here, in one place; ``docs/recipes.md`` documents them. :func:`load_recipe` applies ``--set`` overrides,
validates with pydantic and resolves relative manifest paths against the recipe file's folder.
"""

from __future__ import annotations

import importlib.resources
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from scibind.errors import ConfigError
from scibind.train.overrides import apply_overrides

__all__ = [
    "CompatibleConfig",
    "DataConfig",
    "EvalConfig",
    "ObjectiveConfig",
    "Recipe",
    "TowerConfig",
    "TrainConfig",
    "dump_recipe",
    "load_recipe",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class TowerConfig(_Strict):
    """One tower: the encoder bound to one view (manifest column) and its projection into the joint space."""

    modality: str | None = Field(
        None, description="Modality of the view (`text`, `vector`, ...); default: the view name."
    )
    encoder: str = Field(description="Registered encoder name, e.g. `core/mlp` (`scibind list encoders`).")
    encoder_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="Keyword arguments passed to the encoder factory."
    )
    projection: Literal["linear", "mlp", "none"] = Field(
        "linear", description="Head mapping the encoder output to `embed_dim` (`none` needs equal widths)."
    )
    freeze_encoder: bool = Field(
        False, description="Keep the encoder's weights fixed; train only the projection."
    )
    freeze: bool = Field(
        False,
        description="Lock the whole tower (encoder and projection; LiT): no gradients, eval mode, weights "
        "bit-identical after training. See `train.cache_frozen` and docs/strategies.md.",
    )
    lr_scale: float = Field(
        1.0,
        ge=0,
        description="Multiplier of `train.lr` (and its schedule) for this tower's parameters, e.g. 0.01 to "
        "fine-tune a pretrained encoder gently while new heads train at the full rate.",
    )
    encoder_lr_scale: float | None = Field(
        None,
        ge=0,
        description="Multiplier for the encoder alone (its projection keeps `lr_scale`); default: "
        "`lr_scale`.",
    )
    reader: str | None = Field(
        None,
        description="Registered reader of this view's manifest values (`scibind list readers`); default: the "
        "highest-priority installed reader of the modality.",
    )
    reader_kwargs: dict[str, Any] = Field(
        default_factory=dict,
        description="Options of the view's reader, e.g. `{size: [256, 256]}` for `core/image`.",
    )


class ObjectiveConfig(_Strict):
    """The training loss."""

    name: str = Field("core/clip", description="Registered objective name (`scibind list objectives`).")
    pairs: list[list[str]] | None = Field(
        None,
        description="View pairs of a pairwise objective, e.g. `[[text, vector]]`; default: every pair.",
    )
    kwargs: dict[str, Any] = Field(
        default_factory=dict, description="Keyword arguments of the objective (e.g. `temperature`)."
    )

    @model_validator(mode="after")
    def _pairs_are_pairs(self) -> ObjectiveConfig:
        for pair in self.pairs or []:
            if len(pair) != 2:
                raise ValueError(f"objective.pairs entries must name exactly two views, got {pair}")
        return self


class DataConfig(_Strict):
    """Where the paired records come from."""

    dataset: str | None = Field(
        None,
        description="Registered dataset generator (`scibind list datasets`); generated into "
        "`<run_dir>/data/` and used for any of `train` / `eval` that is not given.",
    )
    dataset_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="Arguments of the dataset generator."
    )
    train: Path | None = Field(
        None,
        description="Training manifest (CSV/TSV/Parquet/JSONL); relative paths resolve against the recipe.",
    )
    eval: Path | None = Field(None, description="Evaluation manifest; default: the training manifest.")
    train_split: str = Field("train", description="Value of the manifest's `split` column used for training.")
    eval_split: str = Field("eval", description="Value of the `split` column used for evaluation.")
    labels: list[str] = Field(
        default_factory=list,
        description="Label columns passed to objectives and evaluation (`group` is always).",
    )
    num_workers: int = Field(0, ge=0, description="DataLoader worker processes per training process.")


class CompatibleConfig(_Strict):
    """Backward-compatible training (BCT/XBT): new towers embed into an old model's space."""

    reference: Path = Field(
        description="The old model's embeddings: an embedding store (`scibind embed` output) or an old run "
        "folder whose newest checkpoint embeds this recipe's records."
    )
    views: dict[str, str] = Field(
        description="New tower view -> old view whose embedding of the same record is its target, e.g. "
        "`{view_a: view_a}`."
    )
    weight: float = Field(1.0, ge=0, description="Weight of the compatibility loss added to the objective's.")
    temperature: float = Field(
        0.05, gt=0, description="Fixed temperature of the compatibility InfoNCE (new vs old embeddings)."
    )


class TrainConfig(_Strict):
    """Optimisation and run control."""

    batch_size: int = Field(
        256, gt=0, description="Records per process per micro-batch (global batch: times the world size)."
    )
    max_steps: int = Field(1000, gt=0, description="Optimizer steps to train for.")
    checkpoint_every: int = Field(
        500, gt=0, description="Write a checkpoint every this many steps (and at the end)."
    )
    seed: int = Field(0, description="Seed of python, numpy and torch RNGs and of the data order.")
    lr: float = Field(1e-3, gt=0, description="Peak learning rate (AdamW).")
    weight_decay: float = Field(
        0.1, ge=0, description="AdamW weight decay on weight matrices (not biases, norms or temperatures)."
    )
    betas: tuple[float, float] = Field((0.9, 0.98), description="AdamW betas.")
    eps: float = Field(1e-6, gt=0, description="AdamW epsilon.")
    warmup_steps: int = Field(0, ge=0, description="Steps of linear learning-rate warmup from 0.")
    schedule: Literal["cosine", "constant"] = Field("cosine", description="Learning-rate shape after warmup.")
    min_lr_ratio: float = Field(
        0.0, ge=0, le=1, description="Final learning rate of the cosine, as a fraction of lr."
    )
    grad_clip: float | None = Field(
        1.0, gt=0, description="Clip the global gradient norm to this; null: no clipping."
    )
    accumulate: int = Field(1, ge=1, description="Micro-batches accumulated per optimizer step.")
    grad_cache: bool = Field(
        False,
        description="GradCache: embed each batch in chunks without graphs, compute the loss and the "
        "embedding gradients, then re-run each chunk (same RNG state) and back-propagate; the contrastive "
        "batch can then exceed activation memory.",
    )
    grad_cache_chunk: int = Field(
        64, gt=0, description="Records per encoder chunk with `grad_cache` (bounds activation memory)."
    )
    precision: Literal["fp32", "bf16", "fp16"] = Field(
        "fp32", description="Autocast dtype; `fp16` uses a gradient scaler on CUDA."
    )
    log_every: int = Field(10, gt=0, description="Append a line to `metrics.jsonl` every this many steps.")
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="`auto`: CUDA when available, else CPU."
    )
    init_from: Path | None = Field(
        None,
        description="Run folder (its newest complete checkpoint) or checkpoint folder: towers whose view it "
        "also has start from its weights (safetensors only). Progressive alignment: freeze them and add a "
        "tower.",
    )
    init_views: list[str] | None = Field(
        None,
        description="Views loaded by `init_from` (default: every view this recipe shares with that run).",
    )
    cache_frozen: bool = Field(
        False,
        description="Cache the outputs of frozen encoders (`freeze` or `freeze_encoder`) per record id, "
        "keyed by a hash of the encoder's name, options and weights, in `<run_dir>/cache/`; later epochs "
        "skip their forward.",
    )
    compatible: CompatibleConfig | None = Field(
        None,
        description="Backward-compatible training: add a loss pulling new embeddings onto an old model's "
        "embeddings of the same records; evaluation reports `xbt/<query>-><gallery>/R@k`.",
    )


class EvalConfig(_Strict):
    """Evaluation at the end of training (and by `scibind evaluate`)."""

    tasks: list[dict[str, Any]] = Field(
        default_factory=list,
        description="Evaluation tasks: `{name: <registered head>, ...options}`, e.g. "
        "`{name: core/knn, label: label, view: image}`.",
    )
    batch_size: int = Field(256, gt=0, description="Records per batch when embedding the evaluation split.")


class Recipe(_Strict):
    """A complete training recipe."""

    name: str = Field("", description="Recipe name (default: the registered name or the file's stem).")
    description: str = Field("", description="One line shown in listings and reports.")
    embed_dim: int = Field(128, gt=0, description="Width of the joint embedding space.")
    towers: dict[str, TowerConfig] = Field(
        description="One tower per view (manifest column or `<view>.<field>` group), keyed by view name."
    )
    objective: ObjectiveConfig = Field(default_factory=ObjectiveConfig, description="The training loss.")
    data: DataConfig = Field(default_factory=DataConfig, description="Manifests and splits.")
    train: TrainConfig = Field(default_factory=TrainConfig, description="Optimisation and run control.")
    eval: EvalConfig = Field(default_factory=EvalConfig, description="Evaluation tasks.")

    @model_validator(mode="after")
    def _consistent(self) -> Recipe:
        if not self.towers:
            raise ValueError("towers: a recipe needs at least one tower")
        for pair in self.objective.pairs or []:
            unknown = [v for v in pair if v not in self.towers]
            if unknown:
                raise ValueError(
                    f"objective.pairs names views {unknown} that have no tower; towers: {list(self.towers)}"
                )
        unknown = sorted(set(self.train.init_views or ()) - set(self.towers))
        if unknown:
            raise ValueError(f"train.init_views names views {unknown} that have no tower")
        if self.train.compatible is not None:
            unknown = sorted(set(self.train.compatible.views) - set(self.towers))
            if unknown:
                raise ValueError(f"train.compatible.views names views {unknown} that have no tower")
        if self.data.dataset is None and self.data.train is None:
            raise ValueError(
                "data: set data.train (a manifest path) or data.dataset (a registered generator)"
            )
        return self

    def modality_of(self, view: str) -> str:
        """The modality of ``view``'s tower (its ``modality`` or, by default, the view name)."""
        return self.towers[view].modality or view

    def label_columns(self) -> list[str]:
        """Label columns to load: ``data.labels`` plus ``group``."""
        return list(dict.fromkeys([*self.data.labels, "group"]))


def load_recipe(name_or_path: str | Path, overrides: Sequence[str] = ()) -> Recipe:
    """Load a recipe from a registered name or a YAML file, apply ``--set`` overrides and validate it.

    Args:
        name_or_path: A YAML file path, or a registered recipe name (``core/synthetic-clip``).
        overrides: ``"a.b.c=value"`` strings (values parsed as YAML).

    Returns:
        The validated recipe; manifest paths are absolute (relative ones in the file resolve against the
        file's folder, relative ones given with ``--set`` against the working directory).

    Raises:
        ConfigError: The file or name does not exist, is not YAML, a key is unknown or a value is invalid.
    """
    raw, source, folder, default_name = _read_source(name_or_path)
    data = raw.get("data")
    if isinstance(data, dict):
        for key in ("train", "eval"):
            if isinstance(data.get(key), str) and data[key]:
                data[key] = str(_resolve(folder, data[key]))
    apply_overrides(raw, overrides, Recipe)
    raw.setdefault("name", default_name)
    try:
        recipe = Recipe.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(top level)'}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"recipe {source}: {problems}. `docs/recipes.md` lists every key.") from exc
    for key in ("train", "eval"):
        path = getattr(recipe.data, key)
        if path is not None and not path.is_absolute():
            setattr(recipe.data, key, path.resolve())
    return recipe


def dump_recipe(recipe: Recipe, *, relative_to: Path | None = None) -> str:
    """The recipe as YAML (every key, defaults included), as written to a run's ``config.yaml``.

    Args:
        recipe: The recipe.
        relative_to: Manifest paths inside this folder are written relative to it, so a run folder can be
            moved and its ``config.yaml`` still loads.
    """
    data = recipe.model_dump(mode="json")
    if relative_to is not None:
        base = Path(relative_to).resolve()
        for key in ("train", "eval"):
            value = data["data"][key]
            if value is not None and Path(value).is_relative_to(base):
                data["data"][key] = Path(value).relative_to(base).as_posix()
    data["train"]["betas"] = list(data["train"]["betas"])
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=None)


def _resolve(folder: Path | None, value: str) -> Path:
    path = Path(value).expanduser()
    if path.is_absolute() or folder is None:
        return path
    return (folder / path).resolve()


def _read_source(name_or_path: str | Path) -> tuple[dict[str, Any], str, Path | None, str]:
    """Return (raw mapping, description of the source, folder for relative paths, default name)."""
    path = Path(name_or_path).expanduser()
    text: str
    if path.suffix.lower() in {".yaml", ".yml", ".json"} or path.is_file():
        if not path.is_file():
            raise ConfigError(
                f"recipe file {path} does not exist; pass a YAML path or a registered recipe name"
            )
        text = path.read_text(encoding="utf-8")
        source, folder, default_name = str(path), path.resolve().parent, path.stem
    else:
        text, source, folder, default_name = _read_registered(str(name_or_path))
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"recipe {source} is not valid YAML: {exc}") from exc
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(
            f"recipe {source} must be a YAML mapping of keys (towers, objective, data, train, eval)"
        )
    return raw, source, folder, default_name


def _read_registered(name: str) -> tuple[str, str, Path | None, str]:
    from scibind.api import get_spec

    spec = get_spec("recipes", name)
    package, sep, rel = spec.source.partition(":")
    if not sep or not package or not rel:
        raise ConfigError(
            f"recipe {spec.name!r} (plugin {spec.plugin!r}) has source {spec.source!r}; expected "
            "'package:relative/path.yaml'"
        )
    try:
        resource = importlib.resources.files(package).joinpath(rel)
        text = resource.read_text(encoding="utf-8")
    except (ModuleNotFoundError, FileNotFoundError, NotADirectoryError) as exc:
        raise ConfigError(
            f"recipe {spec.name!r}: cannot read {rel!r} from package {package!r} ({exc}); reinstall plugin "
            f"{spec.distribution or spec.plugin!r}"
        ) from exc
    folder = Path(str(resource)).parent if isinstance(resource, Path) else None
    return text, f"{spec.name} ({spec.source})", folder, spec.name
