"""The ``cell_painting/cell`` reader: one cell of a field, a square crop of every channel around its nucleus.

A value is the field's ``{channel: path}`` mapping plus the cell centre ``y_px`` / ``x_px`` (the columns
``<view>.y_px`` and ``<view>.x_px`` that :func:`scibind_cell_painting.single_cells.single_cell_frame`
writes). The field is read (and normalised, per channel over the whole field) by
:class:`~scibind_cell_painting.reader.FieldReader`, whose cache keeps it decoded, so the other cells of the
same field cost only the crop.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from scibind.data.types import Sample
from scibind.errors import ConfigError, ReadError

from scibind_cell_painting.reader import FieldReader
from scibind_cell_painting.single_cells import CENTRE_FIELDS

__all__ = ["CellReader", "crop_around"]


def crop_around(pixels: Any, y_px: float, x_px: float, crop_px: int) -> Any:
    """A ``[C, crop_px, crop_px]`` crop of a ``[C, H, W]`` tensor centred on ``(y_px, x_px)``.

    The crop starts at ``round(y_px) - crop_px // 2`` (as :func:`scibind_cell_painting.cells.crop_cells`);
    parts outside the field are zero, which is the background after percentile normalisation.
    """
    import torch

    _, height, width = pixels.shape
    top, left = round(y_px) - crop_px // 2, round(x_px) - crop_px // 2
    out = torch.zeros(pixels.shape[0], crop_px, crop_px, dtype=pixels.dtype)
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + crop_px, height), min(left + crop_px, width)
    if y1 > y0 and x1 > x0:
        out[:, y0 - top : y1 - top, x0 - left : x1 - left] = pixels[:, y0:y1, x0:x1]
    return out


class CellReader(FieldReader):
    """A single cell -> ``{"pixels": float32[C, crop_px, crop_px], "channels": int64[C]}``.

    Takes the options of :class:`~scibind_cell_painting.reader.FieldReader` (``channels``, ``missing``,
    ``normalize``, illumination functions, ``cache_mb``) except ``size``: centres are pixels of the field as
    stored.

    Args:
        crop_px: Side of the square crop, in pixels of the field.
        **kwargs: :class:`~scibind_cell_painting.reader.FieldReader` options.

    Raises:
        ConfigError: ``crop_px`` is below 1, or ``size`` is given.
    """

    def __init__(self, crop_px: int = 32, channels: Sequence[str] | None = None, **kwargs: Any) -> None:
        if kwargs.get("size") is not None:
            raise ConfigError(
                "cell_painting/cell crops fields as stored; drop 'size' (cell centres are field pixels) and "
                "set crop_px instead"
            )
        if int(crop_px) < 1:
            raise ConfigError(f"crop_px must be >= 1, got {crop_px}")
        kwargs.pop("size", None)
        super().__init__(channels=channels, **kwargs)
        self.crop_px = int(crop_px)

    def read(self, value: Any, *, record_id: str = "", base_dir: Path | None = None) -> Sample:
        """Read the field of ``value`` (cached) and crop the cell.

        Raises:
            ReadError: ``value`` is not a mapping with ``y_px`` / ``x_px``, the centre is not a finite point
                inside the field, or the field cannot be read (messages name the files).
        """
        if not isinstance(value, Mapping) or any(value.get(k) is None for k in CENTRE_FIELDS):
            raise ReadError(
                f"a cell record needs its field's channel files and the centre fields {list(CENTRE_FIELDS)} "
                "(columns <view>.y_px, <view>.x_px; write them with single_cell_manifest), got "
                f"{sorted(value) if isinstance(value, Mapping) else type(value).__name__}",
                record=record_id or None,
            )
        try:
            y_px, x_px = float(value["y_px"]), float(value["x_px"])
        except (TypeError, ValueError) as exc:
            raise ReadError(
                f"cell centre ({value['y_px']!r}, {value['x_px']!r}) is not a pair of numbers",
                record=record_id or None,
            ) from exc
        field = {k: v for k, v in value.items() if k not in CENTRE_FIELDS}
        sample = super().read(field, record_id=record_id, base_dir=base_dir)
        pixels = sample.data["pixels"]
        height, width = int(pixels.shape[1]), int(pixels.shape[2])
        if not (math.isfinite(y_px) and math.isfinite(x_px) and 0 <= y_px < height and 0 <= x_px < width):
            raise ReadError(
                f"cell centre (y={y_px}, x={x_px}) px lies outside the {height}x{width} field; the centres "
                "belong to other files, rebuild the cell manifest",
                path=sample.meta["source"][0] if isinstance(sample.meta["source"], list) else None,
                record=record_id or None,
            )
        data = {"pixels": crop_around(pixels, y_px, x_px, self.crop_px), "channels": sample.data["channels"]}
        meta = {
            **sample.meta,
            "centre_px": (y_px, x_px),
            "crop_px": self.crop_px,
            "field_size": (height, width),
        }
        return Sample(id=record_id, modality=self.modality, data=data, meta=meta)
