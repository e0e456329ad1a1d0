"""One attention heatmap from a trained model folder and a slide: what ``scibind pathology heatmap`` runs.

The model folder is either a ``scibind train`` run with a ``wsi_bag`` tower (its slide encoder's attention)
or a ``scibind pathology mil-train`` output (the classifier's attention, plus its class probabilities). The
slide is a slide file, or a record id of the run's data manifest. Its tile features come from, in order:
``features=``, the manifest row of the record (the tower's view column; the slide image from
``slide_column``), ``<features_dir>/<slide stem>.h5`` of a mil-train folder, or the run's reader options
(a tile ``encoder`` extracts them through the feature cache).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scibind.errors import ConfigError, DataError

__all__ = ["AttentionModel", "load_attention_model", "slide_heatmap"]

FEATURE_SUFFIXES = (".h5", ".hdf5")


@dataclass
class AttentionModel:
    """A module with ``attention(bag) -> [1, N]`` and where it came from.

    Attributes:
        module: The slide encoder (``ABMILEncoder``/``PrototypeEncoder``) or the mil-train classifier.
        in_dim: Width of the tile features it takes.
        folder: The model folder.
        view: The run's ``wsi_bag`` view (``None`` for a mil-train folder).
        classes: Class names of a mil-train classifier (empty for a run).
        run: The loaded run (``None`` for a mil-train folder).
        features_dir: The feature folder a mil-train classifier was trained on.
    """

    module: Any
    in_dim: int
    folder: Path
    view: str | None = None
    classes: list[str] = field(default_factory=list)
    run: Any = None
    features_dir: Path | None = None


def load_attention_model(
    folder: str | Path, *, view: str | None = None, step: int | None = None
) -> AttentionModel:
    """Load the attention-pooling module of a ``scibind train`` run or a ``mil-train`` output.

    Args:
        folder: The model folder.
        view: The run's ``wsi_bag`` view (needed only when it has several).
        step: Checkpoint step of a run (default: newest).

    Raises:
        ConfigError: Not a model folder, no (or several) ``wsi_bag`` towers, or an encoder without attention.
    """
    from scibind_pathology.mil import is_mil_folder, load_mil_model

    folder = Path(folder)
    if is_mil_folder(folder):
        module, config = load_mil_model(folder)
        features_dir = Path(config["features_dir"]) if config.get("features_dir") else None
        return AttentionModel(
            module, int(config["in_dim"]), folder, classes=list(config["classes"]), features_dir=features_dir
        )
    from scibind.train.run import load_run

    run = load_run(folder, step)
    bags = [name for name, tower in run.model.towers.items() if tower.modality == "wsi_bag"]
    if view is None:
        if len(bags) != 1:
            raise ConfigError(
                f"{folder}: the run has {len(bags)} wsi_bag towers ({bags}); pick one with --view"
                if bags
                else f"{folder}: the run has no wsi_bag tower; a heatmap needs a slide encoder "
                "(pathology/abmil)"
            )
        view = bags[0]
    if view not in bags:
        raise ConfigError(
            f"{folder}: --view {view!r} is not a wsi_bag tower of the run; its wsi_bag towers: {bags}"
        )
    encoder = run.model.towers[view].encoder
    if not hasattr(encoder, "attention"):
        raise ConfigError(
            f"{folder}: the {view!r} tower's encoder {type(encoder).__name__} has no per-tile attention; use "
            "pathology/abmil or pathology/prototype"
        )
    return AttentionModel(encoder, int(encoder.in_dim), folder, view=view, run=run)


def _run_manifests(model: AttentionModel) -> list[Any]:
    """The run's train and eval manifests (its generated data folder included)."""
    from scibind.data.manifest import read_manifest
    from scibind.train.run import materialize_data

    recipe = model.run.recipe
    with contextlib.suppress(ConfigError):  # no generated data: the recipe names its manifests
        recipe = materialize_data(recipe, model.folder, generate=False)
    paths = dict.fromkeys(str(p) for p in (recipe.data.train, recipe.data.eval) if p is not None)
    return [read_manifest(path) for path in paths]


def _run_row(model: AttentionModel, record: str, slide_column: str) -> tuple[Path | None, Path | None]:
    """(slide image, features) of ``record`` in the run's train/eval manifests, or ``(None, None)``."""
    for manifest in _run_manifests(model):
        frame = manifest.frame
        rows = frame.index[frame["id"].astype(str) == record].tolist()
        if not rows:
            continue
        row = frame.loc[rows[0]]

        def cell(column: str, row: Any = row, manifest: Any = manifest) -> Path | None:
            value = row.get(column)
            if value is None or (isinstance(value, float) and np.isnan(value)) or not str(value).strip():
                return None
            candidate = Path(str(value).strip()).expanduser()
            return candidate if candidate.is_absolute() else manifest.base_dir / candidate

        view_value = cell(model.view or "")
        if view_value is not None and view_value.suffix.lower() in FEATURE_SUFFIXES:
            return cell(slide_column), view_value
        return view_value, None
    return None, None


def _extract_with_run_reader(model: AttentionModel, slide: Path, slide_mpp: float | None) -> Path:
    from scibind.train.run import view_configs

    from scibind_pathology.features import extract_features
    from scibind_pathology.readers import WSIReader, default_cache_dir

    reader = view_configs(model.run.recipe)[model.view].reader
    if not isinstance(reader, WSIReader) or reader.encoder is None:
        raise ConfigError(
            f"{slide}: no feature file for this slide, and the run's {model.view!r} reader has no tile "
            "encoder to extract one; pass --features FILE.h5"
        )
    return extract_features(
        slide,
        reader.cache_dir or default_cache_dir(),
        tiling=reader.tiling,
        encoder=reader.encoder,
        encoder_kwargs=reader.encoder_kwargs,
        slide_mpp=slide_mpp if slide_mpp is not None else reader.slide_mpp,
        batch_size=reader.batch_size,
    )


def _resolve(
    model: AttentionModel, slide: str, features: Path | None, slide_column: str, slide_mpp: float | None
) -> tuple[Path, Path]:
    slide_path: Path | None = Path(slide).expanduser()
    if not slide_path.is_file() or slide_path.suffix.lower() in FEATURE_SUFFIXES:
        if model.run is None:
            raise DataError(f"{slide}: no such slide file; give the slide image (svs, tif, ...) to paint on")
        slide_path, from_row = _run_row(model, slide, slide_column)
        if slide_path is None:
            raise DataError(
                f"{slide}: neither a slide file nor a record id of {model.folder}'s data (with an image in "
                f"column {slide_column!r}, see --slide-column)"
            )
        features = features or from_row
    if features is None and model.run is not None:
        features = _match_manifest_image(model, slide_path, slide_column)
    if features is None and model.features_dir is not None:
        features = next(
            (c for s in FEATURE_SUFFIXES if (c := model.features_dir / f"{slide_path.stem}{s}").is_file()),
            None,
        )
    if features is None:
        if model.run is None:
            raise DataError(
                f"{slide_path}: no {slide_path.stem}.h5 in the classifier's feature folder "
                f"{model.features_dir}; pass --features FILE.h5"
            )
        features = _extract_with_run_reader(model, slide_path, slide_mpp)
    return slide_path, Path(features)


def _match_manifest_image(model: AttentionModel, slide_path: Path, slide_column: str) -> Path | None:
    """The features of the run's manifest row whose image column names ``slide_path``, if any."""
    target = slide_path.resolve()
    for manifest in _run_manifests(model):
        if slide_column not in manifest.frame.columns:
            continue
        for record, image in zip(manifest.frame["id"], manifest.frame[slide_column], strict=True):
            if isinstance(image, str) and (manifest.base_dir / image).resolve() == target:
                _, features = _run_row(model, str(record), slide_column)
                return features
    return None


def slide_heatmap(
    model_dir: str | Path,
    slide: str,
    out_png: str | Path,
    *,
    features: str | Path | None = None,
    view: str | None = None,
    step: int | None = None,
    slide_column: str = "slide_file",
    max_side: int = 1024,
    slide_mpp: float | None = None,
    top: int = 5,
) -> dict[str, Any]:
    """Paint a trained model's per-tile attention for one slide over its thumbnail.

    Args:
        model_dir: A ``scibind train`` run with a ``wsi_bag`` tower, or a ``mil-train`` output.
        slide: A slide file, or a record id of the run's data manifest.
        out_png: The PNG to write.
        features: The slide's feature file (TRIDENT/CLAM layout), if not found otherwise.
        view: The run's ``wsi_bag`` view, when it has several.
        step: Checkpoint step of a run (default: newest).
        slide_column: Manifest column holding the slide image when the view holds feature files.
        max_side: Longer side of the PNG in pixels.
        slide_mpp: µm/px for slides without units.
        top: How many of the most attended tiles to report.

    Returns:
        ``{"out", "slide", "features", "n_tiles", "top_tiles": [{"x", "y", "weight"}], ...}`` plus
        ``prediction`` and ``probabilities`` for a mil-train classifier.

    Raises:
        ConfigError: See :func:`load_attention_model`.
        DataError: The slide or its features cannot be found, or the features do not fit the model.
    """
    import torch

    from scibind_pathology.features import load_features
    from scibind_pathology.heatmap import attention_heatmap

    model = load_attention_model(model_dir, view=view, step=step)
    slide_path, feature_path = _resolve(
        model, slide, Path(features) if features else None, slide_column, slide_mpp
    )
    bag = load_features(feature_path)
    if bag.features.shape[1] != model.in_dim:
        raise DataError(
            f"{feature_path}: features have width {bag.features.shape[1]} but the model takes "
            f"{model.in_dim}; use the feature files of the tile encoder the model was trained on"
        )
    size = bag.attrs.get("patch_size_level0")
    if size is None:
        raise DataError(
            f"{feature_path}: its coords carry no patch_size_level0 attribute (TRIDENT/CLAM layout)"
        )
    with torch.no_grad():
        weights = model.module.attention({"features": torch.from_numpy(bag.features)})[0].numpy()
    out = attention_heatmap(
        slide_path, bag.coords, weights, int(size), out_png, max_side=max_side, slide_mpp=slide_mpp
    )
    order = np.argsort(-weights)[:top]
    summary: dict[str, Any] = {
        "out": str(out),
        "slide": str(slide_path),
        "features": str(feature_path),
        "n_tiles": len(weights),
        "patch_size_level0": int(size),
        "top_tiles": [
            {"x": int(bag.coords[i, 0]), "y": int(bag.coords[i, 1]), "weight": float(weights[i])}
            for i in order
        ],
    }
    if model.classes:
        from scibind_pathology.mil import class_probabilities

        probs = class_probabilities(model.module, bag.features)
        summary["prediction"] = model.classes[int(np.argmax(probs))]
        summary["probabilities"] = {c: float(p) for c, p in zip(model.classes, probs, strict=True)}
    return summary
