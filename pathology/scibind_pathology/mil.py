"""An ABMIL slide classifier trained on a folder of feature files and a labels CSV, saved and loaded again.

:func:`train_mil_folder` is what ``scibind pathology mil-train`` runs: it matches ``<slide_id>.h5`` feature
files (TRIDENT/CLAM layout) to the rows of a CLAM-style labels CSV (``slide_id,label``), cross-validates a
gated-attention MIL classifier (:func:`scibind_pathology.heads.cross_validate_abmil`), then trains it on every
slide and writes:

- ``metrics.json``: out-of-fold ``accuracy``, ``balanced_accuracy``, ``macro_f1``, ``n``, ``n_classes``, the
  classes, folds and the slides left out;
- ``predictions.csv``: ``slide_id,label,predicted`` (out of fold);
- ``model.safetensors`` + ``config.json``: the final model (no pickle), read back by :func:`load_mil_model`.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scibind.errors import ConfigError, DataError

__all__ = [
    "MIL_ARCHITECTURE",
    "MILTraining",
    "class_probabilities",
    "is_mil_folder",
    "load_mil_model",
    "train_mil_folder",
]

MIL_ARCHITECTURE = "pathology/abmil-classifier"
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
SLIDE_SUFFIXES = (".svs", ".tif", ".tiff", ".ndpi", ".mrxs", ".scn", ".svslide", ".bif", ".vms", ".vmu")


@dataclass
class MILTraining:
    """What :func:`train_mil_folder` wrote.

    Attributes:
        out_dir: The output folder.
        metrics: Out-of-fold ``accuracy``, ``balanced_accuracy``, ``macro_f1``, ``n``, ``n_classes``.
        classes: Class names; the model's output ``i`` is ``classes[i]``.
        missing: Slide ids of the CSV without a feature file (left out).
    """

    out_dir: Path
    metrics: dict[str, float]
    classes: list[str]
    missing: list[str]


def _read_labels(labels_csv: Path, id_column: str | None, label_column: str) -> list[tuple[str, str]]:
    try:
        with open(labels_csv, encoding="utf-8", newline="") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{labels_csv}: not a readable CSV ({exc})") from exc
    columns = list(rows[0]) if rows else []
    if id_column is None:
        id_column = next((c for c in ("slide_id", "id") if c in columns), None)
    if id_column is None or id_column not in columns or label_column not in columns:
        raise ConfigError(
            f"{labels_csv}: needs an id column (slide_id or id, or --id-column) and the label column "
            f"{label_column!r} (--label-column); its columns are {columns}"
        )
    pairs = []
    for row in rows:
        slide_id, label = (row.get(id_column) or "").strip(), (row.get(label_column) or "").strip()
        if slide_id and label:
            pairs.append((slide_id, label))
    return pairs


def _feature_file(features_dir: Path, slide_id: str) -> Path | None:
    stem = slide_id[: -len(Path(slide_id).suffix)] if slide_id.lower().endswith(SLIDE_SUFFIXES) else slide_id
    for suffix in (".h5", ".hdf5"):
        candidate = features_dir / f"{stem}{suffix}"
        if candidate.is_file():
            return candidate
    return None


def _save_model(model: Any, out_dir: Path, config: dict[str, Any]) -> None:
    from safetensors.torch import save_file
    from scibind.atomic import atomic_replace, atomic_write_json

    state = {name: tensor.detach().contiguous() for name, tensor in model.state_dict().items()}
    atomic_replace(out_dir / WEIGHTS_FILE, lambda tmp: save_file(state, str(tmp)))
    atomic_write_json(out_dir / CONFIG_FILE, config)


def train_mil_folder(
    features_dir: str | Path,
    labels_csv: str | Path,
    out_dir: str | Path,
    *,
    id_column: str | None = None,
    label_column: str = "label",
    folds: int = 5,
    epochs: int = 40,
    hidden_dim: int = 64,
    lr: float = 2e-3,
    seed: int = 0,
) -> MILTraining:
    """Cross-validate, then train and save, an ABMIL classifier on ``<slide_id>.h5`` feature files.

    Args:
        features_dir: Folder of TRIDENT/CLAM feature files named ``<slide_id>.h5``.
        labels_csv: CSV with a slide id column (``slide_id`` or ``id``) and ``label_column``.
        out_dir: Output folder (created).
        id_column: Name of the slide id column (default: ``slide_id``, else ``id``).
        label_column: Name of the label column.
        folds: Stratified cross-validation folds (shrunk to the smallest class).
        epochs: Training epochs (each fold, and the final model).
        hidden_dim: Width of the attention network.
        lr: AdamW learning rate.
        seed: Seed of folds and training.

    Returns:
        What was written, with the out-of-fold metrics.

    Raises:
        ConfigError: Missing columns in the CSV.
        DataError: No feature file matches, mixed feature widths, or fewer than two classes with 2+ slides.
    """
    from scibind.atomic import atomic_replace, atomic_write_json

    from scibind_pathology.features import load_features
    from scibind_pathology.heads import cross_validate_abmil, fit_abmil

    features_dir, labels_csv, out_dir = Path(features_dir), Path(labels_csv), Path(out_dir)
    if not features_dir.is_dir():
        raise ConfigError(f"{features_dir} is not a folder of feature files (<slide_id>.h5)")
    pairs = _read_labels(labels_csv, id_column, label_column)
    ids, labels, bags, files, missing = [], [], [], [], []
    for slide_id, label in pairs:
        path = _feature_file(features_dir, slide_id)
        if path is None:
            missing.append(slide_id)
            continue
        ids.append(slide_id)
        labels.append(label)
        bags.append(load_features(path).features)
        files.append(path)
    if not bags:
        raise DataError(
            f"no feature file in {features_dir} matches a slide id of {labels_csv} (expected "
            f"<slide_id>.h5, e.g. {features_dir / (pairs[0][0] if pairs else 'slide')}.h5)"
        )
    widths = {int(b.shape[1]) for b in bags}
    if len(widths) > 1:
        by_width = {
            w: next(str(f) for f, b in zip(files, bags, strict=True) if b.shape[1] == w) for w in widths
        }
        raise DataError(
            f"feature files have different widths {sorted(widths)} (e.g. {by_width}); extract every slide "
            "with the same tile encoder"
        )
    kwargs = {"epochs": epochs, "hidden_dim": hidden_dim, "lr": lr, "seed": seed}
    result = cross_validate_abmil(bags, labels, folds=folds, **kwargs)
    names = result.classes
    kept = result.kept
    model = fit_abmil(
        [bags[i] for i in kept],
        result.targets,
        len(names),
        **kwargs,  # type: ignore[arg-type]
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    encoder_attrs = load_features(files[kept[0]]).attrs
    config = {
        "architecture": MIL_ARCHITECTURE,
        "in_dim": int(bags[0].shape[1]),
        "hidden_dim": hidden_dim,
        "classes": names,
        "label_column": label_column,
        "features_dir": str(features_dir.resolve()),
        "tile_encoder": str(encoder_attrs.get("encoder", "")),
        "target_mpp": float(encoder_attrs["target_mpp"]) if "target_mpp" in encoder_attrs else None,
        "train": {**kwargs, "folds": result.folds, "n_slides": len(kept)},
    }
    _save_model(model, out_dir, config)
    left_out = sorted(set(range(len(ids))) - set(kept))
    atomic_write_json(
        out_dir / "metrics.json",
        {
            **result.metrics,
            "classes": names,
            "folds": result.folds,
            "missing_features": missing,
            "rare_class_slides": [ids[i] for i in left_out],
        },
    )

    def write_predictions(tmp: Path) -> None:
        with open(tmp, "w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["slide_id", "label", "predicted"])
            for i, pred in zip(kept, result.predictions, strict=True):
                writer.writerow([ids[i], labels[i], names[int(pred)]])

    atomic_replace(out_dir / "predictions.csv", write_predictions)
    return MILTraining(out_dir, result.metrics, names, missing)


def is_mil_folder(path: str | Path) -> bool:
    """Whether ``path`` is a folder written by :func:`train_mil_folder`."""
    config = Path(path) / CONFIG_FILE
    if not config.is_file():
        return False
    try:
        return json.loads(config.read_text(encoding="utf-8")).get("architecture") == MIL_ARCHITECTURE
    except (OSError, ValueError, AttributeError):
        return False


def load_mil_model(path: str | Path) -> tuple[Any, dict[str, Any]]:
    """The trained ABMIL classifier of a :func:`train_mil_folder` output (eval mode) and its config.

    Raises:
        ConfigError: ``path`` is not such a folder, or its weights do not fit the config.
    """
    from safetensors.torch import load_file

    from scibind_pathology.bags import ABMILEncoder

    path = Path(path)
    if not is_mil_folder(path):
        raise ConfigError(
            f"{path} is not a `scibind pathology mil-train` output ({CONFIG_FILE} with architecture "
            f"{MIL_ARCHITECTURE!r} is missing)"
        )
    config = json.loads((path / CONFIG_FILE).read_text(encoding="utf-8"))
    model = ABMILEncoder(
        in_dim=int(config["in_dim"]), embed_dim=len(config["classes"]), hidden_dim=int(config["hidden_dim"])
    )
    try:
        model.load_state_dict(load_file(str(path / WEIGHTS_FILE)), strict=True)
    except (OSError, RuntimeError, ValueError) as exc:
        raise ConfigError(f"{path / WEIGHTS_FILE}: cannot load the classifier's weights ({exc})") from exc
    return model.eval(), config


def class_probabilities(model: Any, features: np.ndarray) -> np.ndarray:
    """Softmax over the classes for one bag ``float[N, D]``."""
    import torch

    with torch.no_grad():
        logits = model({"features": torch.from_numpy(np.asarray(features, dtype=np.float32))})
    return torch.softmax(logits, dim=-1)[0].numpy()
