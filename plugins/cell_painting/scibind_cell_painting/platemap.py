"""Plate maps and compound tables (JUMP-Target layout): which perturbation is in which well.

A plate map has one row per well (``well_position`` or ``Metadata_Well``) and a perturbation id
(``broad_sample``, ``jcp2022``, ...). A compound table adds names, SMILES, InChIKey and targets per id.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from scibind.errors import DataError, ReadError

from scibind_cell_painting.naming import parse_well, well_name

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["WELL_COLUMNS", "annotate_wells", "read_compounds", "read_platemap", "read_table"]

WELL_COLUMNS = ("well_position", "Metadata_Well", "well", "Well", "Metadata_well_position")


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a CSV / TSV / Parquet table (gzip allowed) as text columns where ambiguous.

    Raises:
        ReadError: The file is missing or unreadable.
    """
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise ReadError("table not found", path=path)
    name = path.name.lower()
    try:
        if name.endswith((".parquet", ".pq")):
            return pd.read_parquet(path)
        sep = "\t" if ".tsv" in name or ".txt" in name else ","
        return pd.read_csv(path, sep=sep, low_memory=False, keep_default_na=True)
    except Exception as exc:  # pandas / pyarrow raise many kinds
        raise ReadError(f"cannot read the table ({type(exc).__name__}: {exc})", path=path) from exc


def _normalise_wells(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    column = next((c for c in WELL_COLUMNS if c in frame.columns), None)
    if column is None:
        raise ReadError(
            f"no well column (one of {list(WELL_COLUMNS)}); columns: {list(frame.columns)}", path=path
        )
    try:
        wells = [well_name(*parse_well(w)) for w in frame[column].astype(str)]
    except Exception as exc:
        raise ReadError(f"column {column!r}: {exc}", path=path) from exc
    frame = frame.drop(columns=[column]).assign(well=wells)
    duplicated = sorted(set(frame["well"][frame["well"].duplicated()]))
    if duplicated:
        raise ReadError(f"wells listed more than once: {duplicated[:10]}", path=path)
    return frame


def read_platemap(path: str | Path) -> pd.DataFrame:
    """A plate map with a normalised ``well`` column (``"A01"``).

    Raises:
        ReadError: Unreadable, no well column, malformed or duplicate wells.
    """
    path = Path(path)
    return _normalise_wells(read_table(path), path)


def read_compounds(path: str | Path, key: str = "broad_sample") -> pd.DataFrame:
    """A compound table with one row per ``key``.

    Identical repeated rows (the JUMP-Target-2 table lists some compounds twice) are merged; rows that share
    ``key`` but differ are an error.

    Raises:
        ReadError: Unreadable, ``key`` missing, or conflicting rows for one ``key``.
    """
    path = Path(path)
    frame = read_table(path).drop_duplicates().reset_index(drop=True)
    if key not in frame.columns:
        raise ReadError(f"no column {key!r}; columns: {list(frame.columns)}", path=path)
    dup = sorted(set(frame[key][frame[key].duplicated()].astype(str)))
    if dup:
        raise ReadError(f"{key} values listed more than once with different metadata: {dup[:5]}", path=path)
    return frame


def annotate_wells(
    frame: pd.DataFrame,
    platemap: pd.DataFrame,
    compounds: pd.DataFrame | None = None,
    *,
    key: str = "broad_sample",
    platemap_name: str = "the plate map",
    allow_unmapped: Sequence[str] = (),
) -> pd.DataFrame:
    """Join per-well (or per-field) rows with their plate-map entry and compound metadata.

    Args:
        frame: Rows with a ``well`` column (e.g. :func:`scibind_cell_painting.fields.fields_frame`).
        platemap: From :func:`read_platemap`.
        compounds: From :func:`read_compounds`, joined on ``key``; ``None`` to skip. Wells without a ``key``
            (JUMP-Target leaves the DMSO wells empty) take the table's row without a ``key`` when it has one
            (JUMP-Target's DMSO row: ``control_type`` ``negcon``, SMILES ``C[S+](C)[O-]``), as pandas
            matches missing keys to each other.
        key: Perturbation id column shared by the plate map and the compound table.
        platemap_name: How messages name the plate map (its path).
        allow_unmapped: Wells allowed to be absent from the plate map (their metadata stays empty).

    Raises:
        DataError: Wells of ``frame`` are absent from the plate map (named), or ``key`` is missing.
    """
    absent = sorted(set(frame["well"]) - set(platemap["well"]) - set(allow_unmapped))
    if absent:
        raise DataError(
            f"wells {absent[:10]}{' ...' if len(absent) > 10 else ''} are not in {platemap_name}; check the "
            "plate barcode / plate map pairing, or list them in allow_unmapped"
        )
    out = frame.merge(platemap, on="well", how="left", suffixes=("", "_platemap"))
    if compounds is not None:
        if key not in out.columns:
            raise DataError(f"{platemap_name} has no column {key!r} to join the compound table on")
        out = out.merge(compounds, on=key, how="left", suffixes=("", "_compound"))
    return out
