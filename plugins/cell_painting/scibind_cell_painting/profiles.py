"""Per-well morphological profiles (pycytominer CSV / Parquet): ``Metadata_*`` columns vs feature columns.

:func:`read_profiles` splits a profile table into metadata and a ``float32`` feature matrix;
:func:`profiles_manifest` writes a scibind manifest pairing each well's profile with perturbation text.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from scibind.errors import ConfigError, ReadError

from scibind_cell_painting.platemap import read_table
from scibind_cell_painting.text import DEFAULT_TEMPLATE, metadata_fields, perturbation_text

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Profiles", "profiles_manifest", "read_profiles"]

METADATA_PREFIX = "Metadata_"


@dataclass
class Profiles:
    """A profile table split in two.

    Attributes:
        metadata: The ``Metadata_*`` columns, one row per well (index 0..n-1).
        features: ``float32[n, F]`` feature matrix.
        feature_names: The ``F`` feature column names, in order.
        dropped: Feature columns left out because they held missing or non-finite values.
        source: The file read.
    """

    metadata: pd.DataFrame
    features: np.ndarray
    feature_names: list[str]
    dropped: list[str]
    source: Path

    def __len__(self) -> int:
        return int(self.features.shape[0])


def read_profiles(path: str | Path, *, nan: str = "drop") -> Profiles:
    """Read a pycytominer profile table.

    Feature columns are the numeric columns not starting with ``Metadata_``.

    Args:
        path: ``.csv``, ``.csv.gz``, ``.tsv`` or ``.parquet``.
        nan: ``drop`` feature columns holding NaN/inf (listed in :attr:`Profiles.dropped`) or ``error``.

    Raises:
        ReadError: Unreadable, no metadata or no feature column, or non-finite values with ``nan="error"``.
    """
    if nan not in ("drop", "error"):
        raise ConfigError(f"nan must be 'drop' or 'error', got {nan!r}")
    path = Path(path)
    frame = read_table(path)
    meta_cols = [c for c in frame.columns if str(c).startswith(METADATA_PREFIX)]
    if not meta_cols:
        raise ReadError(f"no {METADATA_PREFIX}* column: is this a pycytominer profile table?", path=path)
    rest = frame.drop(columns=meta_cols)
    numeric = rest.select_dtypes(include="number")
    non_numeric = [c for c in rest.columns if c not in numeric.columns]
    if non_numeric:
        raise ReadError(
            f"feature columns must be numeric; {non_numeric[:5]} are not (rename metadata columns with the "
            f"{METADATA_PREFIX} prefix)",
            path=path,
        )
    if numeric.shape[1] == 0:
        raise ReadError("no feature column (every column is Metadata_*)", path=path)
    values = numeric.to_numpy(dtype=np.float64)
    finite = np.isfinite(values).all(axis=0)
    dropped = [str(c) for c, ok in zip(numeric.columns, finite, strict=True) if not ok]
    if dropped and nan == "error":
        raise ReadError(f"{len(dropped)} feature column(s) hold NaN/inf, e.g. {dropped[:3]}", path=path)
    keep = [str(c) for c, ok in zip(numeric.columns, finite, strict=True) if ok]
    if not keep:
        raise ReadError("every feature column holds NaN/inf values", path=path)
    return Profiles(
        metadata=frame[meta_cols].reset_index(drop=True),
        features=values[:, finite].astype(np.float32),
        feature_names=keep,
        dropped=dropped,
        source=path,
    )


def _no_smiles(value: object) -> bool:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return True
    return str(value).strip().lower() in ("", "nan", "none", "na", "null")


def _join_platemap(meta: pd.DataFrame, platemap: str | Path, compounds: str | Path | None) -> pd.DataFrame:
    """``meta`` joined with a plate map (on ``Metadata_Well``) and a compound table, columns prefixed."""
    from scibind_cell_painting.platemap import annotate_wells, read_compounds, read_platemap

    if "Metadata_Well" not in meta.columns:
        raise ConfigError(f"a plate-map join needs a Metadata_Well column; columns: {list(meta.columns)}")
    wells = meta[["Metadata_Well"]].rename(columns={"Metadata_Well": "well"})
    joined = annotate_wells(
        wells,
        read_platemap(platemap),
        None if compounds is None else read_compounds(compounds),
        platemap_name=str(platemap),
    )
    out = meta.copy()
    for column in joined.columns:
        name = f"{METADATA_PREFIX}{column}"
        if column != "well" and name not in out.columns:
            out[name] = joined[column].to_numpy()
    return out


def profiles_manifest(
    path: str | Path,
    out_dir: str | Path,
    *,
    template: str = DEFAULT_TEMPLATE,
    labels: Mapping[str, str] | None = None,
    group: str | None = "Metadata_broad_sample",
    controls: Mapping[str, str] | None = None,
    eval_fraction: float = 0.2,
    seed: int = 0,
    drop_controls: bool = False,
    view: str = "profile",
    smiles: str | None = None,
    molecule_view: str = "molecule",
    platemap: str | Path | None = None,
    compounds: str | Path | None = None,
) -> Path:
    """Write a manifest pairing each well's profile (``vector`` view) with perturbation text.

    Columns: ``id`` (``<plate>_<well>`` or the row number), ``<view>`` (float32 list), ``text``
    (:func:`scibind_cell_painting.text.perturbation_text` of the row's metadata), one column per entry of
    ``labels``, ``group`` and ``split`` (group-safe, from :func:`scibind.data.splits.assign_splits`).

    Args:
        path: The profile table.
        out_dir: Folder for ``manifest.parquet``.
        template: Perturbation text template (fields: metadata names without ``Metadata_``, lower-case).
        labels: Output label column -> metadata column (default: ``moa``, ``compound``, ``plate``, ``well``
            from the LINCS / JUMP names that exist).
        group: Metadata column whose values never cross splits (default: the compound); ``None``: wells.
        controls: Metadata column -> value marking control wells; their text is ``"<value> control"`` and
            they get no molecule view. Default: ``{"Metadata_control_type": "negcon"}`` when that column
            exists (JUMP-Target: the DMSO wells; positive controls are compounds with structures and keep
            their text and SMILES), else ``{"Metadata_pert_type": "control"}`` when that one does (LINCS).
        eval_fraction: Fraction of groups in the ``eval`` split.
        seed: Split seed.
        drop_controls: Leave control wells out.
        view: Name of the profile column.
        smiles: Metadata column holding SMILES (e.g. ``Metadata_smiles`` after a plate-map join): adds a
            ``molecule_view`` column (modality ``molecule_graph``, read by the molecules plugin's
            ``molecules/molecule`` reader) for profile <-> structure alignment (CLOOME). Wells without a
            SMILES (controls) get an empty value (the view is absent for them). ``None``: no molecule view.
        molecule_view: Name of the molecule column.
        platemap: A plate map (:func:`scibind_cell_painting.platemap.read_platemap`) joined on
            ``Metadata_Well`` before anything else; its columns, and those of ``compounds``, are added with
            the ``Metadata_`` prefix (JUMP profiles carry only plate and well: this brings ``broad_sample``,
            ``pert_iname``, ``smiles``, ``InChIKey``).
        compounds: A compound table (:func:`scibind_cell_painting.platemap.read_compounds`) joined on
            ``broad_sample``; only with ``platemap``.

    Returns:
        The manifest path.
    """
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq
    from scibind.atomic import atomic_replace
    from scibind.data.splits import assign_splits

    profiles = read_profiles(path)
    meta = profiles.metadata
    if platemap is not None:
        meta = _join_platemap(meta, platemap, compounds)
    elif compounds is not None:
        raise ConfigError("compounds are joined through the plate map: pass platemap too")
    if smiles is not None and smiles not in meta.columns:
        raise ConfigError(f"{path}: no SMILES column {smiles!r}; columns: {list(meta.columns)}")
    if labels is None:
        candidates = {
            "moa": "Metadata_moa",
            "compound": "Metadata_broad_sample",
            "plate": "Metadata_Plate",
            "well": "Metadata_Well",
        }
        labels = {k: v for k, v in candidates.items() if v in meta.columns}
    missing = [c for c in labels.values() if c not in meta.columns]
    if group is not None and group not in meta.columns:
        missing.append(group)
    if missing:
        raise ConfigError(f"{path}: no metadata column(s) {missing}; columns: {list(meta.columns)}")
    if controls is None:
        controls = {}
        if "Metadata_control_type" in meta.columns:
            controls = {"Metadata_control_type": "negcon"}
        elif "Metadata_pert_type" in meta.columns:
            controls = {"Metadata_pert_type": "control"}
    is_control = np.zeros(len(meta), dtype=bool)
    for column, value in controls.items():
        is_control |= meta[column].astype(str).to_numpy() == str(value)
    keep = ~is_control if drop_controls else np.ones(len(meta), dtype=bool)
    texts = []
    for i, row in enumerate(meta.to_dict("records")):
        fields = metadata_fields(row)
        if is_control[i]:
            texts.append(f"{fields.get('pert') or 'vehicle'} control")
        else:
            texts.append(perturbation_text(fields, template))
    if "Metadata_Plate" in meta.columns and "Metadata_Well" in meta.columns:
        ids = (meta["Metadata_Plate"].astype(str) + "_" + meta["Metadata_Well"].astype(str)).tolist()
    else:
        ids = [f"row_{i:05d}" for i in range(len(meta))]
    groups = meta[group].astype(str).tolist() if group is not None else list(ids)
    rows = pd.DataFrame({"id": ids, "text": texts, "group": groups})
    for name, column in labels.items():
        rows[name] = (
            meta[column]
            .where(meta[column].notna(), None)
            .astype(object)
            .map(lambda v: None if v is None else str(v))
        )
    if smiles is not None:
        rows[molecule_view] = [
            None if _no_smiles(v) or is_control[i] else str(v).strip() for i, v in enumerate(meta[smiles])
        ]
    rows = rows[keep].reset_index(drop=True)
    features = profiles.features[keep]
    rows["split"] = assign_splits(
        rows["id"], rows["group"], {"train": 1.0 - eval_fraction, "eval": eval_fraction}, seed=seed
    )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    manifest = out / "manifest.parquet"
    table = pa.Table.from_pandas(rows, preserve_index=False).append_column(
        view, pa.array(list(features), type=pa.list_(pa.float32()))
    )
    atomic_replace(manifest, lambda tmp: pq.write_table(table, tmp))
    return manifest
