"""The containers one record travels in: :class:`Sample` from a reader, :class:`Batch` into the model."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = ["Batch", "ModalityBatch", "Sample"]


@dataclass
class Sample:
    """One modality's value of one record, as a reader produced it.

    Attributes:
        id: The record id (manifest ``id`` column).
        modality: The modality name (``"text"``, ``"vector"``, ...).
        data: The value, in the form the modality's ``sample_type`` documents.
        meta: Provenance: ``source`` (file), ``record``, physical units (``mpp``, ``spacing_mm``), channel
            names, library versions.
    """

    id: str
    modality: str
    data: Any
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class ModalityBatch:
    """One view's collated values for the records of a batch where it is present.

    Attributes:
        data: The modality's collate output over the present records only.
        index: ``int64[n_present]`` positions of those records within the batch.
    """

    data: Any
    index: torch.Tensor

    def to(self, device: torch.device | str) -> ModalityBatch:
        """Move tensors (also inside dicts/lists) to ``device``."""
        return ModalityBatch(data=move_to(self.data, device), index=self.index.to(device))


@dataclass
class Batch:
    """A batch of records with any subset of views present per record.

    Attributes:
        ids: Record ids, length ``B``.
        views: View name (manifest column / tower name) -> :class:`ModalityBatch`.
        present: View name -> ``bool[B]`` presence mask (every view of the recipe has one).
        targets: ``label``-like columns as tensors of length ``B`` (e.g. ``group`` as int codes).
    """

    ids: list[str]
    views: dict[str, ModalityBatch]
    present: dict[str, torch.Tensor]
    targets: dict[str, torch.Tensor] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ids)

    def to(self, device: torch.device | str) -> Batch:
        """Move every tensor to ``device``."""
        return Batch(
            ids=self.ids,
            views={k: v.to(device) for k, v in self.views.items()},
            present={k: v.to(device) for k, v in self.present.items()},
            targets={k: v.to(device) for k, v in self.targets.items()},
        )


def move_to(obj: Any, device: torch.device | str) -> Any:
    """Recursively move tensors in ``obj`` (tensor, dict, list, tuple, or any object with ``.to``)."""
    if isinstance(obj, torch.Tensor):
        return obj.to(device)
    if isinstance(obj, dict):
        return {k: move_to(v, device) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(move_to(v, device) for v in obj)
    if callable(getattr(obj, "to", None)) and not isinstance(obj, (str, bytes)):
        # Batch-like objects of other libraries (torch_geometric Batch, transformers BatchEncoding).
        return obj.to(device)
    return obj
