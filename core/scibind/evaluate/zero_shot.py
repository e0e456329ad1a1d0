"""Zero-shot classification from text prompts, with prompt ensembles (CLIP, Radford et al. 2021).

Each class is embedded as the mean of its L2-normalised prompt embeddings (one prompt per template),
renormalised; a record is assigned the class whose embedding has the highest cosine with the record's
embedding of ``view``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F

from scibind.errors import ConfigError, ShapeError
from scibind.evaluate.context import EncodeText, EvalContext

__all__ = ["ZeroShotTask", "class_embeddings", "classification_metrics"]

TASK = "core/zero-shot"


def class_embeddings(encode_text: EncodeText, names: Sequence[str], templates: Sequence[str]) -> torch.Tensor:
    """Embed every class as the renormalised mean of its normalised prompt embeddings.

    Args:
        encode_text: The model's text tower into the joint space.
        names: One natural-language name per class.
        templates: Prompt templates with one ``{}`` for the class name.

    Returns:
        ``float[C, D]`` unit rows, in the order of ``names``.
    """
    prompts = [t.format(name) for name in names for t in templates]
    emb = torch.as_tensor(encode_text(prompts)).detach().float().cpu()
    if emb.ndim != 2 or emb.shape[0] != len(prompts):
        raise ShapeError(f"{TASK}: encode_text returned shape {tuple(emb.shape)} for {len(prompts)} prompts")
    emb = F.normalize(emb, dim=-1).reshape(len(names), len(templates), -1).mean(1)
    return F.normalize(emb, dim=-1)


def classification_metrics(
    y_true: Sequence[str], y_pred: Sequence[str], classes: Sequence[str]
) -> dict[str, float]:
    """Accuracy, balanced accuracy (mean per-class recall) and macro-F1 over ``classes``."""
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score

    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "balanced_accuracy": float(balanced_accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=list(classes), average="macro", zero_division=0)),
    }


class ZeroShotTask:
    """Zero-shot accuracy of ``view`` embeddings against text prompts of the classes of ``label``.

    Keys: ``zero_shot/<key>/accuracy``, ``.../balanced_accuracy``, ``.../macro_f1``, ``.../n`` and
    ``.../n_classes``, where ``key`` defaults to the view. Classes are the label values present among eval
    records with ``view``.

    Args:
        label: The label column holding the classes.
        view: The view to classify (e.g. ``vector``).
        templates: Prompt templates, each with one ``{}`` for the class name.
        classnames: Label value -> name used in prompts (default: the value itself).
        key: Name of the task in its metric keys (default: ``view``); give each of several zero-shot tasks on
            one view its own, e.g. ``ct/lobe`` and ``ct/density``.
    """

    def __init__(
        self,
        label: str,
        view: str,
        templates: Sequence[str] = ("{}", "a sample of {}"),
        classnames: Mapping[str, str] | None = None,
        key: str | None = None,
    ) -> None:
        if isinstance(templates, str) or not templates:
            raise ConfigError(f"{TASK}: templates must be a non-empty list of strings, got {templates!r}")
        for t in templates:
            if str(t).count("{}") != 1:
                raise ConfigError(
                    f"{TASK}: template {t!r} must contain exactly one '{{}}' for the class name"
                )
        self.label = label
        self.view = view
        self.templates = tuple(str(t) for t in templates)
        self.classnames = {str(k): str(v) for k, v in (classnames or {}).items()}
        self.key = view if key is None else str(key)

    def __call__(self, ctx: EvalContext) -> dict[str, float]:
        """Classify every eval record that has ``view`` and a known ``label``."""
        if ctx.encode_text is None:
            raise ConfigError(
                f"{TASK}: the model has no text tower, so it cannot embed prompts; add a text tower to the "
                f"recipe or remove {TASK} from eval.tasks"
            )
        index, y = ctx.labelled(self.label, self.view, TASK)
        classes = sorted(set(y))
        protos = class_embeddings(
            ctx.encode_text, [self.classnames.get(c, c) for c in classes], self.templates
        )
        x = ctx.embeddings[self.view][index].float()
        if protos.shape[1] != x.shape[1]:
            raise ShapeError(
                f"{TASK}: text embeddings have width {protos.shape[1]} but view {self.view!r} has "
                f"{x.shape[1]}"
            )
        pred = [classes[i] for i in (x @ protos.T).argmax(1).tolist()]
        prefix = f"zero_shot/{self.key}"
        out = {f"{prefix}/{k}": v for k, v in classification_metrics(y, pred, classes).items()}
        out[f"{prefix}/n"] = float(len(y))
        out[f"{prefix}/n_classes"] = float(len(classes))
        return out
