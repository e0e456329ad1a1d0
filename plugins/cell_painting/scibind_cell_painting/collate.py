"""Collate of ``cell_painting_image`` samples: pad the channel axis so any channel subsets batch."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from scibind.errors import DataError, ShapeError

__all__ = ["collate_fields"]


def collate_fields(items: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
    """Stack fields into ``{"pixels": [B, C, H, W], "channels": int64[B, C], "mask": bool[B, C]}``.

    ``C`` is the largest channel count of the batch; shorter fields are padded with zero planes whose
    ``mask`` is ``False`` (and channel id 0), which channel-wise encoders ignore.

    Raises:
        DataError: The batch is empty or an item is not ``{"pixels", "channels"}``.
        ShapeError: Fields differ in height or width (resize them with ``FieldReader(size=...)``).
    """
    if not items:
        raise DataError("cannot collate an empty list of fields")
    for i, item in enumerate(items):
        if not isinstance(item, Mapping) or "pixels" not in item or "channels" not in item:
            raise DataError(f"field {i} is not {{'pixels', 'channels'}}; read it with cell_painting/field")
    sizes = [tuple(item["pixels"].shape[1:]) for item in items]
    if len(set(sizes)) > 1:
        raise ShapeError(
            f"fields of one batch differ in size ({sorted(set(sizes))}); read them with "
            "FieldReader(size=(H, W)) or crop them to one size"
        )
    width = max(int(item["pixels"].shape[0]) for item in items)
    height, cols = sizes[0]
    pixels = torch.zeros(len(items), width, height, cols, dtype=torch.float32)
    channels = torch.zeros(len(items), width, dtype=torch.long)
    mask = torch.zeros(len(items), width, dtype=torch.bool)
    for i, item in enumerate(items):
        c = int(item["pixels"].shape[0])
        pixels[i, :c] = item["pixels"]
        channels[i, :c] = item["channels"]
        mask[i, :c] = True
    return {"pixels": pixels, "channels": channels, "mask": mask}
