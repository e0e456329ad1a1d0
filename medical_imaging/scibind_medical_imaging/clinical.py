"""Clinical tables as text: one record's structured values rendered as a short, stable sentence.

Radiograph datasets often pair images with a table (sex, projection, lab values) instead of a report.
:func:`render_record` turns one row into text that a text tower can embed, so the table can be a view
(``report``) next to the image, or be used for image <-> structured record retrieval.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["render_record"]


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or str(value).strip() == ""


def _format(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def render_record(
    row: Mapping[str, Any], columns: Sequence[str] | None = None, names: Mapping[str, str] | None = None
) -> str:
    """``"name: value; name: value"`` over ``columns`` (default: all), skipping missing values.

    Args:
        row: One record (a dict or a pandas row).
        columns: Columns to render, in order.
        names: Display names (``{"crp_val": "CRP"}``); default: the column name with ``_`` as spaces.

    Returns:
        The text, ``""`` when every value is missing.
    """
    names = dict(names or {})
    parts = []
    for column in columns if columns is not None else list(row.keys()):
        value = row.get(column)
        if _missing(value):
            continue
        parts.append(f"{names.get(column, column.replace('_', ' '))}: {_format(value)}")
    return "; ".join(parts)
