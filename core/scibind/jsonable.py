"""Converting results (numpy/torch scalars and arrays, paths, NaN) to plain JSON types."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

__all__ = ["jsonable"]


def jsonable(value: Any) -> Any:
    """Convert ``value`` to plain JSON types.

    Dicts, lists and tuples are converted recursively; numpy and torch values through ``tolist()``; paths
    and unknown objects become strings; non-finite floats become ``None`` (JSON has no NaN).
    """
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [jsonable(v) for v in value]
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Path):
        return str(value)
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        return jsonable(tolist())
    return str(value)
