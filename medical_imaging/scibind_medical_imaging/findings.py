"""``medical_imaging/findings``: zero-shot findings from positive vs negative text prompts, per-finding AUROC.

Radiology findings are multi-label and mostly absent, so accuracy over classes is the wrong summary. As in
CheXzero (Tiu et al. 2022) and MGCA's zero-shot evaluation, each finding gets a *positive* prompt ("nodule in
the left upper lobe") and a *negative* one ("no nodule in the left upper lobe"); a record's score is
``cos(image, positive) - cos(image, negative)``. A softmax over the two prompts at any temperature is a
monotone function of that difference, so the AUROC is the same. Each prompt side may be an ensemble: the
renormalised mean of its L2-normalised prompt embeddings.

Ground truth comes from a label column: a record has finding ``(label, value)`` when its ``label`` equals
``value``. Records without the view or with the label missing are left out of that finding.

Negated prompts only help a text tower that represents negation: a bag-of-n-grams encoder such as
``core/tiny-text`` embeds "no nodule in the left upper lobe" almost like the positive prompt, so the
difference carries no lobe. For mutually exclusive findings (one value of a label per record) the negative
side may instead be the other values' positive prompts (omit ``negative``): one-vs-rest.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from scibind.errors import ConfigError, DataError, ShapeError
from scibind.evaluate.context import EncodeText, EvalContext

__all__ = ["Finding", "FindingsTask", "auroc", "prompt_embedding"]

TASK = "medical_imaging/findings"


@dataclass(frozen=True)
class Finding:
    """One binary finding: present where ``label == value``; scored by its positive vs negative prompts."""

    name: str
    label: str
    value: str
    positive: tuple[str, ...]
    negative: tuple[str, ...]


def auroc(scores: Sequence[float], targets: Sequence[bool]) -> float:
    """Area under the ROC curve: P(score of a positive > score of a negative), ties counting one half.

    Raises:
        DataError: ``targets`` holds only one class (the AUROC is undefined).
    """
    pos = [float(s) for s, t in zip(scores, targets, strict=True) if t]
    neg = [float(s) for s, t in zip(scores, targets, strict=True) if not t]
    if not pos or not neg:
        raise DataError(f"AUROC needs positives and negatives, got {len(pos)} and {len(neg)}")
    p = torch.tensor(pos, dtype=torch.float64)[:, None]
    n = torch.tensor(neg, dtype=torch.float64)[None, :]
    return float(((p > n).double() + 0.5 * (p == n).double()).mean())


def prompt_embedding(encode_text: EncodeText, prompts: Sequence[str]) -> torch.Tensor:
    """The renormalised mean of the L2-normalised embeddings of ``prompts`` (``float[D]``)."""
    emb = torch.as_tensor(encode_text(list(prompts))).detach().float().cpu()
    if emb.ndim != 2 or emb.shape[0] != len(prompts):
        raise ShapeError(f"{TASK}: encode_text returned shape {tuple(emb.shape)} for {len(prompts)} prompts")
    return F.normalize(F.normalize(emb, dim=-1).mean(0), dim=0)


def _prompts(value: Any, where: str) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else list(value or [])
    if not items or not all(isinstance(p, str) and p.strip() for p in items):
        raise ConfigError(f"{TASK}: {where} must be a prompt or a non-empty list of prompts, got {value!r}")
    return tuple(items)


def _templates(value: Any, where: str) -> tuple[str, ...]:
    items = _prompts(value, where)
    for t in items:
        if t.count("{}") != 1:
            raise ConfigError(f"{TASK}: {where} template {t!r} must contain exactly one '{{}}'")
    return items


def _key(name: str) -> str:
    return re.sub(r"[^0-9A-Za-z._-]+", "_", name.strip()).strip("_") or "finding"


class FindingsTask:
    """Per-finding zero-shot AUROC of ``view`` embeddings, and their macro mean.

    Findings are given either as templates over the values of one label column (``label``, ``positive``,
    ``negative``, optionally ``values`` and ``classnames``), or explicitly (``findings``), or both. Without
    ``negative`` templates, a label value's negative prompts are the positive prompts of its other values
    (one-vs-rest, for mutually exclusive values)::

        - name: medical_imaging/findings
          view: ct
          label: location                      # one finding per lobe
          positive: ["nodule in the {} lobe"]
          negative: ["no nodule in the {} lobe"]
          findings:
            - {name: calcified, label: density, value: calcified,
               positive: "calcified nodule", negative: "solid nodule"}

    Keys (``<prefix>`` is ``findings`` unless set): ``<prefix>/<view>/<finding>/auroc``, ``.../n_pos``,
    ``.../n_neg``, ``<prefix>/<view>/macro_auroc`` (mean over findings with both classes),
    ``<prefix>/<view>/n_findings`` and ``<prefix>/<view>/n``. A finding whose eval records are all positive
    or all negative has no ``auroc`` key and is counted in ``<prefix>/<view>/n_undefined``.

    Args:
        view: The image view to score.
        label: Label column whose values are findings (template form).
        positive: Positive prompt template(s), one ``{}`` for the finding's name (template form).
        negative: Negative prompt template(s) (template form); ``None``: the other values' positive prompts.
        values: The label values to score (default: every value among the eval records).
        classnames: Label value -> name used in prompts (default: the value).
        findings: Explicit findings: ``{name, label, value, positive, negative}`` with literal prompts.
        prefix: First part of every metric key (to run the head twice on one view).
    """

    def __init__(
        self,
        view: str,
        label: str | None = None,
        positive: str | Sequence[str] | None = None,
        negative: str | Sequence[str] | None = None,
        values: Sequence[str] | None = None,
        classnames: Mapping[str, str] | None = None,
        findings: Sequence[Mapping[str, Any]] | None = None,
        prefix: str = "findings",
    ) -> None:
        if not isinstance(prefix, str) or not re.fullmatch(r"[0-9A-Za-z._-]+", prefix):
            raise ConfigError(
                f"{TASK}: prefix must be a word of letters, digits, '.', '_', '-', got {prefix!r}"
            )
        self.prefix = prefix
        self.view = view
        self.label = label
        if label is not None:
            self.positive = _templates(positive, "positive")
            self.negative = None if negative is None else _templates(negative, "negative")
        elif positive is not None or negative is not None or values is not None or classnames:
            raise ConfigError(f"{TASK}: positive/negative templates and values need a label column (label)")
        elif not findings:
            raise ConfigError(
                f"{TASK}: give findings from a label column (label, positive, negative) or a findings list"
            )
        self.values = None if values is None else [str(v) for v in values]
        self.classnames = {str(k): str(v) for k, v in (classnames or {}).items()}
        self.explicit: list[Finding] = []
        for i, item in enumerate(findings or []):
            if not isinstance(item, Mapping):
                raise ConfigError(f"{TASK}: findings[{i}] must be a mapping, got {item!r}")
            missing = [k for k in ("label", "value", "positive", "negative") if k not in item]
            unknown = sorted(set(item) - {"name", "label", "value", "positive", "negative"})
            if missing or unknown:
                raise ConfigError(
                    f"{TASK}: findings[{i}] needs label, value, positive, negative (and optionally name); "
                    f"missing {missing}, unknown {unknown}"
                )
            self.explicit.append(
                Finding(
                    name=str(item.get("name") or item["value"]),
                    label=str(item["label"]),
                    value=str(item["value"]),
                    positive=_prompts(item["positive"], f"findings[{i}].positive"),
                    negative=_prompts(item["negative"], f"findings[{i}].negative"),
                )
            )

    def findings(self, ctx: EvalContext) -> list[Finding]:
        """The findings scored on ``ctx``: one per label value (templates), then the explicit ones."""
        out: list[Finding] = []
        if self.label is not None:
            present = sorted({v for v in ctx.require_label(self.label, TASK) if v is not None})
            values = self.values if self.values is not None else present
            unknown = [v for v in values if v not in present]
            if unknown:
                raise DataError(
                    f"{TASK}: values {unknown} of label {self.label!r} occur in no eval record (present: "
                    f"{present})"
                )
            if self.negative is None and len(present) < 2:
                raise DataError(f"{TASK}: one-vs-rest needs 2 values of {self.label!r}, got {present}")

            def prompts(value: str, templates: tuple[str, ...]) -> tuple[str, ...]:
                return tuple(t.format(self.classnames.get(value, value)) for t in templates)

            for value in values:
                negative = (
                    prompts(value, self.negative)
                    if self.negative is not None
                    else tuple(
                        p for other in present if other != value for p in prompts(other, self.positive)
                    )
                )
                out.append(Finding(value, self.label, value, prompts(value, self.positive), negative))
        out.extend(self.explicit)
        keys = [_key(f.name) for f in out]
        if len(set(keys)) != len(keys):
            raise ConfigError(f"{TASK}: finding names must be distinct, got {keys}")
        return out

    def __call__(self, ctx: EvalContext) -> dict[str, float]:
        """Score every finding on the eval records that have ``view`` and the finding's label."""
        if ctx.encode_text is None:
            raise ConfigError(
                f"{TASK}: the model has no text tower, so it cannot embed prompts; add a text tower to the "
                f"recipe or remove {TASK} from eval.tasks"
            )
        mask = ctx.require_view(self.view, TASK)
        x = ctx.embeddings[self.view].float()
        prefix = f"{self.prefix}/{self.view}"
        out: dict[str, float] = {}
        aurocs: list[float] = []
        undefined = 0
        used: set[int] = set()
        findings = self.findings(ctx)
        for finding in findings:
            labels = ctx.require_label(finding.label, TASK)
            index = [i for i in range(len(ctx)) if bool(mask[i]) and labels[i] is not None]
            direction = prompt_embedding(ctx.encode_text, finding.positive) - prompt_embedding(
                ctx.encode_text, finding.negative
            )
            if direction.shape[0] != x.shape[1]:
                raise ShapeError(
                    f"{TASK}: text embeddings have width {direction.shape[0]} but view {self.view!r} has "
                    f"{x.shape[1]}"
                )
            scores = (x[index] @ direction).tolist()
            targets = [labels[i] == finding.value for i in index]
            key = f"{prefix}/{_key(finding.name)}"
            out[f"{key}/n_pos"] = float(sum(targets))
            out[f"{key}/n_neg"] = float(len(targets) - sum(targets))
            used.update(index)
            if 0 < sum(targets) < len(targets):
                out[f"{key}/auroc"] = auroc(scores, targets)
                aurocs.append(out[f"{key}/auroc"])
            else:
                undefined += 1
        if not aurocs:
            raise DataError(
                f"{TASK}: no finding has both positive and negative eval records with view {self.view!r}; "
                "evaluate on more records"
            )
        out[f"{prefix}/macro_auroc"] = sum(aurocs) / len(aurocs)
        out[f"{prefix}/n_findings"] = float(len(findings))
        out[f"{prefix}/n_undefined"] = float(undefined)
        out[f"{prefix}/n"] = float(len(used))
        return out
