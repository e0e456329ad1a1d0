"""What every evaluation head receives: :class:`EvalContext`, the embedded eval set."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from scibind.errors import ConfigError, DataError, ShapeError

__all__ = ["EncodeText", "EvalContext"]

EncodeText = Callable[[list[str]], torch.Tensor]
"""``encode_text(prompts) -> Tensor[K, D]``: prompts embedded into the joint space by the text tower."""


@dataclass
class EvalContext:
    """The eval set in the joint space, as every head sees it.

    Attributes:
        ids: Record ids, length ``N``.
        embeddings: View -> ``float32[N, D]``, L2-normalised rows, zero rows where the view is absent.
        present: View -> ``bool[N]`` presence mask.
        labels: Label column -> raw values per record (``None`` = missing).
        groups: Group (patient, donor, plate, ...) per record, or ``None`` when the manifest has none.
        encode_text: Embeds prompts with the model's text tower; ``None`` when the model has none.
        text_view: The view the text tower encodes (``None`` when there is no text tower).
        dataset: The dataset the embeddings came from, record ``i`` = row ``i`` (a
            :class:`scibind.data.dataset.PairedDataset`); lets heads read raw view data with
            :meth:`view_data` (regression targets, baselines on raw features). ``None`` when embeddings were
            given without one.
    """

    ids: list[str]
    embeddings: dict[str, torch.Tensor]
    present: dict[str, torch.Tensor]
    labels: dict[str, list[str | None]] = field(default_factory=dict)
    groups: list[str | None] | None = None
    encode_text: EncodeText | None = None
    text_view: str | None = None
    dataset: Any | None = None

    def __post_init__(self) -> None:
        n = len(self.ids)
        for view, emb in self.embeddings.items():
            if emb.ndim != 2 or emb.shape[0] != n:
                raise ShapeError(
                    f"eval embeddings of view {view!r} have shape {tuple(emb.shape)}; expected [{n}, D]"
                )
            mask = self.present.get(view)
            if mask is None or mask.shape != (n,):
                raise ShapeError(f"eval presence mask of view {view!r} is missing or not of shape [{n}]")
        for name, values in self.labels.items():
            if len(values) != n:
                raise ShapeError(f"label column {name!r} has {len(values)} values for {n} eval records")
        if self.groups is not None and len(self.groups) != n:
            raise ShapeError(f"the group column has {len(self.groups)} values for {n} eval records")
        if self.dataset is not None and len(self.dataset) != n:
            raise ShapeError(f"the eval dataset has {len(self.dataset)} records for {n} embedded records")

    @property
    def views(self) -> list[str]:
        """The embedded views, in model order."""
        return list(self.embeddings)

    def __len__(self) -> int:
        return len(self.ids)

    def view_data(self, view: str, task: str) -> list[Any]:
        """Raw data of ``view`` per record, as its reader returns it (``None`` where absent).

        Args:
            view: A view of the eval dataset (it need not be embedded by the model).
            task: The task name, for error messages.

        Raises:
            ConfigError: The context has no dataset, or the dataset has no such view.
        """
        if self.dataset is None:
            raise ConfigError(
                f"{task}: needs the raw eval data, but these embeddings were given without a dataset"
            )
        views = list(getattr(self.dataset, "views", {}))
        if view not in views:
            raise ConfigError(f"{task}: view {view!r} is not in the eval dataset; set view to one of {views}")
        return [self.dataset.read_view(i, view) for i in range(len(self.ids))]

    def require_view(self, view: str, task: str) -> torch.Tensor:
        """Return the presence mask of ``view`` or raise a :class:`ConfigError` naming the task.

        Args:
            view: A view name from the task's options.
            task: The task name, for the message (``"core/zero-shot"``).
        """
        if view not in self.embeddings:
            raise ConfigError(
                f"{task}: view {view!r} is not embedded by this model; set view to one of {self.views}"
            )
        return self.present[view].bool()

    def require_label(self, label: str, task: str) -> list[str | None]:
        """Return the values of label column ``label`` or raise a :class:`ConfigError` naming the task."""
        if label not in self.labels:
            raise ConfigError(
                f"{task}: label column {label!r} is not in the eval manifest; "
                f"set label to one of {sorted(self.labels) or '(the manifest has no label columns)'}"
            )
        return self.labels[label]

    def labelled(self, label: str, view: str, task: str) -> tuple[torch.Tensor, list[str]]:
        """Indices of records where ``view`` is present and ``label`` is known, and their label values.

        Raises:
            ConfigError: Unknown view or label.
            DataError: Fewer than two classes remain.
        """
        mask = self.require_view(view, task)
        values = self.require_label(label, task)
        index = [i for i in range(len(self.ids)) if bool(mask[i]) and values[i] is not None]
        y = [str(values[i]) for i in index]
        classes = sorted(set(y))
        if len(classes) < 2:
            raise DataError(
                f"{task}: label {label!r} has {len(classes)} class(es) {classes} among the {len(y)} eval "
                f"records with view {view!r}; it needs at least 2 (evaluate on a manifest with more classes "
                "or drop the task)"
            )
        return torch.tensor(index, dtype=torch.long), y
