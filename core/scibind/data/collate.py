"""Collate functions: a list of per-record sample data -> one batch object for an encoder.

A modality names its collate in :class:`scibind.registry.ModalitySpec` (default :func:`default_collate`);
:func:`collate_for_modality` resolves it.
"""

from __future__ import annotations

import functools
import numbers
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from scibind.errors import DataError, ShapeError

__all__ = ["collate_for_modality", "collate_list", "default_collate"]


def _as_tensor(item: Any) -> torch.Tensor:
    if isinstance(item, torch.Tensor):
        return item
    if isinstance(item, np.ndarray):
        if item.dtype == object or item.dtype.kind in "USV":
            raise DataError(
                f"cannot collate a numpy array of dtype {item.dtype}; convert it to numbers first"
            )
        return torch.from_numpy(np.ascontiguousarray(item))
    if isinstance(item, bool):
        return torch.tensor(item, dtype=torch.bool)
    if isinstance(item, numbers.Integral):
        return torch.tensor(int(item), dtype=torch.int64)
    if isinstance(item, numbers.Real):
        return torch.tensor(float(item), dtype=torch.float32)
    raise DataError(f"cannot collate a {type(item).__name__}; use tensors, arrays, numbers, dicts or str")


def _stack(tensors: list[torch.Tensor]) -> torch.Tensor:
    shapes = [tuple(t.shape) for t in tensors]
    if len(set(shapes)) > 1:
        first = shapes[0]
        odd = [i for i, s in enumerate(shapes) if s != first]
        examples = ", ".join(f"item {i} has {shapes[i]}" for i in odd[:3])
        raise ShapeError(
            f"cannot stack {len(tensors)} samples of different shapes: item 0 has {first}, {examples}"
            f"{' ...' if len(odd) > 3 else ''}; resize them to one shape (e.g. ImageReader(size=(H, W))) or "
            "give the modality a collate that pads"
        )
    dtypes = {t.dtype for t in tensors}
    if len(dtypes) > 1:
        dtype = functools.reduce(torch.promote_types, dtypes)
        tensors = [t.to(dtype) for t in tensors]
    return torch.stack(tensors)


def default_collate(items: Sequence[Any]) -> Any:
    """Stack a list of samples into a batch.

    Tensors, numpy arrays and numbers are stacked into one tensor ``[B, ...]`` (numbers: ``int64``,
    ``float32`` or ``bool``); dicts are collated key by key; tuples and lists position by position; strings
    are returned as a list.

    Args:
        items: One sample per record; all of the same kind and shape.

    Returns:
        The stacked batch.

    Raises:
        ShapeError: Samples have different shapes (the message names them), or dicts different keys.
        DataError: ``items`` is empty or holds something that cannot be collated.
    """
    if len(items) == 0:
        raise DataError("cannot collate an empty list of samples")
    first = items[0]
    if isinstance(first, str):
        return collate_list(items)
    if isinstance(first, Mapping):
        keys = list(first)
        for i, item in enumerate(items):
            if not isinstance(item, Mapping) or set(item) != set(keys):
                got = sorted(item) if isinstance(item, Mapping) else type(item).__name__
                raise ShapeError(
                    f"cannot collate dicts with different keys: item 0 has {sorted(keys)}, item {i} has {got}"
                )
        return {k: default_collate([item[k] for item in items]) for k in keys}
    if isinstance(first, (tuple, list)):
        lengths = {len(item) for item in items}
        if len(lengths) > 1:
            raise ShapeError(f"cannot collate sequences of different lengths {sorted(lengths)}")
        return type(first)(default_collate(list(column)) for column in zip(*items, strict=True))
    return _stack([_as_tensor(item) for item in items])


def collate_list(items: Sequence[Any]) -> list[Any]:
    """Keep samples as a plain list (text, variable-size objects such as graphs or bags)."""
    return list(items)


@functools.cache
def _resolve(ref: str | Callable[..., Any], what: str) -> Callable[[Sequence[Any]], Any]:
    from scibind.registry import resolve_factory

    return resolve_factory(ref, what=what)


def collate_for_modality(modality: str) -> Callable[[Sequence[Any]], Any]:
    """The collate function of a registered modality (resolved once per ``"module:attr"`` reference).

    Raises:
        UnknownNameError: The modality is not registered.
        MissingDependencyError: Its collate lives in a module that cannot be imported.
    """
    from scibind.api import get_spec

    spec = get_spec("modalities", modality)
    return _resolve(spec.collate, f"collate of modality {spec.name!r}")
