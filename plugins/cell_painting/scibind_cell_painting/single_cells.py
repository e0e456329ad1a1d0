"""Single cells as records: one manifest row per nucleus found on a field's DNA channel.

A field manifest (one row per site, ``<view>.<Channel>`` file columns, as
:func:`scibind_cell_painting.fields.fields_frame` writes) becomes a cell manifest: each row is one cell of a
field, with every column of its field (plate, well, ``group``, ``split``, labels) plus the nucleus centre in
``<view>.y_px`` / ``<view>.x_px`` (pixels of the field as stored). The ``cell_painting/cell`` reader
(:class:`scibind_cell_painting.cell_reader.CellReader`) reads such a row as a crop of every channel around
that centre. Because the cells of a field keep their field's ``group`` (the well), splits stay well-safe,
and evaluation heads average cells per well with ``aggregate: well_id``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from scibind.errors import ConfigError, DataError

from scibind_cell_painting.cells import find_nuclei
from scibind_cell_painting.channels import CHANNELS

if TYPE_CHECKING:
    import pandas as pd

    from scibind_cell_painting.reader import FieldReader

__all__ = ["CENTRE_FIELDS", "single_cell_frame", "single_cell_manifest"]

CENTRE_FIELDS = ("y_px", "x_px")
"""Fields of the view holding a cell's centre (``<view>.y_px``, ``<view>.x_px``), in field pixels."""


def _view_columns(frame: pd.DataFrame, view: str) -> list[str]:
    prefix = f"{view}."
    return [c for c in frame.columns if c.startswith(prefix) and c[len(prefix) :] not in CENTRE_FIELDS]


def single_cell_frame(
    frame: pd.DataFrame,
    view: str = "cells",
    *,
    base_dir: str | os.PathLike[str] | None = None,
    crop_px: int | None = None,
    min_area_px: int = 30,
    smooth_sigma_px: float = 2.0,
    max_cells_per_field: int | None = None,
    reader: FieldReader | None = None,
) -> pd.DataFrame:
    """One row per nucleus of each field row of ``frame``.

    Nuclei come from :func:`scibind_cell_painting.cells.find_nuclei` on the field's DNA channel as the
    reader returns it (normalised). Fields where none is found contribute no row.

    Args:
        frame: Field rows with an ``id`` column and ``<view>.<Channel>`` file columns (one must be DNA).
        view: The image view.
        base_dir: Folder relative file paths of ``frame`` start from.
        crop_px: When given, drop cells whose ``crop_px`` square would leave the field (as
            :func:`~scibind_cell_painting.cells.crop_cells`); otherwise the reader pads them.
        min_area_px: Smallest nucleus area in pixels.
        smooth_sigma_px: Gaussian sigma before Otsu thresholding, in pixels.
        max_cells_per_field: Keep at most this many cells per field (the first by ``y``, ``x``).
        reader: The :class:`~scibind_cell_painting.reader.FieldReader` to read fields with (default options).

    Returns:
        The cell rows: ``id`` = ``<field id>_c<k>``, ``field_id``, every column of the field row, and
        ``<view>.y_px`` / ``<view>.x_px``.

    Raises:
        DataError: ``frame`` lacks ``id`` or the view's columns, a field has no DNA channel, or no field
            holds a cell. Reading errors of a field are :class:`scibind.errors.ReadError` naming its files.
        ConfigError: ``crop_px`` or ``max_cells_per_field`` is below 1.
    """
    import pandas as pd

    from scibind_cell_painting.reader import FieldReader

    if crop_px is not None and crop_px < 1:
        raise ConfigError(f"crop_px must be >= 1, got {crop_px}")
    if max_cells_per_field is not None and max_cells_per_field < 1:
        raise ConfigError(f"max_cells_per_field must be >= 1, got {max_cells_per_field}")
    columns = _view_columns(frame, view)
    if "id" not in frame.columns or not columns:
        raise DataError(
            f"single_cell_frame needs an 'id' column and '{view}.<Channel>' file columns; got "
            f"{list(frame.columns)[:12]}"
        )
    reader = reader or FieldReader()
    base = None if base_dir is None else Path(base_dir)
    dna = CHANNELS.index("DNA")
    rows: list[dict[str, Any]] = []
    for record in frame.to_dict("records"):
        value = {c[len(view) + 1 :]: (None if pd.isna(record[c]) else record[c]) for c in columns}
        sample = reader.read(value, record_id=str(record["id"]), base_dir=base)
        ids = sample.data["channels"].tolist()
        if dna not in ids:
            raise DataError(
                f"field {record['id']}: no DNA channel (channels {sample.meta['channels']}); nuclei are "
                f"found on DNA, so add its '{view}.DNA' file column"
            )
        plane = sample.data["pixels"][ids.index(dna)].numpy()
        centres = find_nuclei(plane, min_area_px=min_area_px, smooth_sigma_px=smooth_sigma_px)
        if crop_px is not None:
            height, width = plane.shape
            corner = np.round(centres).astype(int) - crop_px // 2
            inside = (
                (corner >= 0).all(1) & (corner[:, 0] + crop_px <= height) & (corner[:, 1] + crop_px <= width)
            )
            centres = centres[inside]
        for k, (y, x) in enumerate(centres[:max_cells_per_field]):
            rows.append(
                {
                    **record,
                    "id": f"{record['id']}_c{k:03d}",
                    "field_id": record["id"],
                    f"{view}.y_px": round(float(y), 2),
                    f"{view}.x_px": round(float(x), 2),
                }
            )
    if not rows:
        raise DataError(
            f"no nucleus found in any of the {len(frame)} fields; lower min_area_px ({min_area_px}) or "
            "check the DNA channel"
        )
    out = pd.DataFrame(rows)
    first = ["id", "field_id", *columns, f"{view}.y_px", f"{view}.x_px"]
    return out[first + [c for c in out.columns if c not in first]]


def single_cell_manifest(
    manifest: str | os.PathLike[str], out: str | os.PathLike[str], view: str = "cells", **kwargs: Any
) -> Path:
    """Write the cell manifest of a field manifest (CSV or Parquet by ``out``'s suffix).

    File paths stay relative when ``out`` is in the field manifest's folder and become absolute otherwise.

    Args:
        manifest: A field manifest (CSV / TSV / Parquet).
        out: The cell manifest to write.
        view: The image view.
        **kwargs: Options of :func:`single_cell_frame` (``crop_px``, ``min_area_px``, ...).

    Returns:
        ``out``.
    """
    from scibind.atomic import atomic_replace

    from scibind_cell_painting.platemap import read_table

    manifest, out = Path(manifest), Path(out)
    base = manifest.resolve().parent
    cells = single_cell_frame(read_table(manifest), view, base_dir=base, **kwargs)
    if out.resolve().parent != base:
        for column in _view_columns(cells, view):
            cells[column] = [
                None if not isinstance(p, str) or not p else str((base / p).resolve()) for p in cells[column]
            ]
    if out.suffix in (".parquet", ".pq"):
        return atomic_replace(out, lambda tmp: cells.to_parquet(tmp, index=False))
    return atomic_replace(out, lambda tmp: cells.to_csv(tmp, index=False))
