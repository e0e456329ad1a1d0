"""Reading ``key = value`` files: one numeric feature per line, ``#`` starts a comment.

Example file::

    # cell morphology features
    area_um2 = 153.2
    eccentricity = 0.41
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, ClassVar

from scibind.data.readers import Reader
from scibind.data.types import Sample
from scibind.errors import ReadError

__all__ = ["KeyValueReader", "parse_key_values"]


def parse_key_values(text: str, *, path: Path | None = None, record_id: str = "") -> dict[str, float]:
    """Parse ``key = value`` lines into an ordered ``{key: float}``.

    Raises:
        ReadError: A line has no ``=``, a value is not a finite number, a key repeats, or nothing is defined.
    """
    values: dict[str, float] = {}
    for line_no, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        key, sep, value = (part.strip() for part in line.partition("="))
        if not sep or not key:
            raise ReadError(
                f"line {line_no}: expected 'key = value', got {raw.strip()!r}",
                path=path,
                record=record_id or None,
            )
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not math.isfinite(number):
            raise ReadError(
                f"line {line_no}: value of {key!r} is not a finite number: {value!r}",
                path=path,
                record=record_id or None,
            )
        if key in values:
            raise ReadError(
                f"line {line_no}: key {key!r} is defined twice", path=path, record=record_id or None
            )
        values[key] = number
    if not values:
        raise ReadError(
            "no 'key = value' line found; the file is empty or only has comments",
            path=path,
            record=record_id or None,
        )
    return values


class KeyValueReader(Reader):
    """``key = value`` file -> ``float32`` vector ``[n_keys]`` with the keys in ``meta["keys"]``.

    Args:
        keys: Expected keys, in order. When given, a file missing one of them is an error and extra keys
            are ignored, so every sample has the same width.
    """

    modality: ClassVar[str] = "vector"

    def __init__(self, keys: list[str] | None = None) -> None:
        self.keys = list(keys) if keys is not None else None

    def read(self, value: Any, *, record_id: str = "", base_dir: Path | None = None) -> Sample:
        """Read the file named by ``value`` (relative paths resolve against ``base_dir``).

        Raises:
            ReadError: The file is missing, not UTF-8, or malformed (see :func:`parse_key_values`).
        """
        import torch

        path = Path(str(value)).expanduser()
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError as exc:
            raise ReadError("file not found; check the path", path=path, record=record_id or None) from exc
        except (OSError, UnicodeDecodeError) as exc:
            raise ReadError(
                f"cannot read as UTF-8 text ({exc})", path=path, record=record_id or None
            ) from exc
        values = parse_key_values(text, path=path, record_id=record_id)
        keys = self.keys if self.keys is not None else list(values)
        missing = [k for k in keys if k not in values]
        if missing:
            raise ReadError(
                f"missing keys {missing}; every file needs the keys {keys}",
                path=path,
                record=record_id or None,
            )
        data = torch.tensor([values[k] for k in keys], dtype=torch.float32)
        return Sample(
            id=record_id,
            modality=self.modality,
            data=data,
            meta={"source": str(path), "record": record_id, "keys": keys},
        )
