"""Data: samples and batches, readers, manifests, group-safe splits, paired datasets and collate.

Names are imported lazily (PEP 562) so that importing :mod:`scibind.data.types` alone stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "Batch",
    "GlobalBatchSampler",
    "Manifest",
    "ModalityBatch",
    "PairedDataset",
    "Reader",
    "Sample",
    "ViewConfig",
    "assign_splits",
    "check_group_splits",
    "collate_for_modality",
    "collate_list",
    "default_collate",
    "read_manifest",
]

_HOME = {
    "Batch": "types",
    "ModalityBatch": "types",
    "Sample": "types",
    "Reader": "readers",
    "Manifest": "manifest",
    "read_manifest": "manifest",
    "assign_splits": "splits",
    "check_group_splits": "splits",
    "collate_for_modality": "collate",
    "collate_list": "collate",
    "default_collate": "collate",
    "PairedDataset": "dataset",
    "ViewConfig": "dataset",
    "GlobalBatchSampler": "sampler",
}


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module 'scibind.data' has no attribute {name!r}")
    return getattr(importlib.import_module(f"scibind.data.{_HOME[name]}"), name)
