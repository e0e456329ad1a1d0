"""Spot <-> H&E patch pairs: Visium samples -> patches, one harmonised expression file, a manifest.

:func:`build_spot_pairs` turns Space Ranger folders (or spatial ``.h5ad`` files with ``obsm['spatial']``)
into a training set:

- ``patches/<sample>/<barcode>.png``: the H&E square of ``tile_um`` µm centred on each spot, resized to
  ``patch_px`` pixels (the image's µm/px comes from the spot diameter and the image's scale factor);
- ``expression.h5ad``: every spot on one harmonised gene panel (``panels.harmonize``,
  normalisation and HVGs recorded in ``uns['scibind']``, patch geometry too);
- ``manifest.csv``: ``id``, ``image`` (patch path), ``gene_expression`` (``expression.h5ad#<id>``),
  ``batch`` (sample), ``split``, ``group`` (= sample when splitting by sample); with ``target_columns``
  also ``hvg:<gene>`` columns (log-normalised expression of the top HVGs). The evaluation heads read their
  targets from ``expression.h5ad`` itself (rows and the recorded HVGs), so the columns are only needed
  to evaluate embeddings without the dataset.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from scibind.atomic import atomic_replace
from scibind.errors import ConfigError, ReadError

from scibind_spatial_omics.he_slides import HE_READERS, slide_geometry
from scibind_spatial_omics.targets import HVG_PREFIX
from scibind_spatial_omics.visium import VisiumSample, crop_patch, read_visium, visium_from_h5ad
from scibind_spatial_omics.xenium import XeniumSample, is_xenium_folder, read_xenium

__all__ = ["build_spot_pairs", "load_sample", "make_visium_spots"]


def load_sample(
    source: str | Path,
    *,
    fullres_image: str | Path | None = None,
    name: str | None = None,
    he_reader: str = "auto",
) -> VisiumSample | XeniumSample:
    """A Space Ranger folder, a spatial ``.h5ad`` or a Xenium folder (cells + registered H&E) as a sample.

    For a Xenium folder ``fullres_image`` is the H&E (default: ``*he_image*`` in the folder).
    ``he_reader`` says how the full-resolution H&E is read (:mod:`scibind_spatial_omics.he_slides`).
    """
    path = Path(source)
    if is_xenium_folder(path):
        return read_xenium(path, he_image=fullres_image, name=name, he_reader=he_reader)
    if path.is_dir():
        return read_visium(path, fullres_image=fullres_image, name=name, he_reader=he_reader)
    if path.suffix == ".h5ad":
        return visium_from_h5ad(path, fullres_image=fullres_image, name=name, he_reader=he_reader)
    raise ReadError("expected a Space Ranger outs/ folder or a spatial .h5ad file", path=path)


def _is_counts(adata: Any) -> bool:
    data = adata.X.data if hasattr(adata.X, "data") else np.asarray(adata.X)
    sample = np.asarray(data[:10000], dtype=np.float64)
    return bool(sample.size and (sample >= 0).all() and np.allclose(sample, np.round(sample)))


def build_spot_pairs(
    sources: Sequence[str | Path] | Mapping[str, str | Path],
    out_dir: str | Path,
    *,
    tile_um: float = 110.0,
    patch_px: int = 32,
    image: str = "auto",
    fullres_images: Mapping[str, str | Path] | None = None,
    panel: Literal["union", "intersection"] = "intersection",
    id_type: Literal["symbol", "ensembl"] = "symbol",
    normalize: bool | None = None,
    n_hvg: int = 50,
    in_tissue_only: bool = True,
    split_by: Literal["spot", "sample"] | None = None,
    eval_fraction: float = 0.3,
    seed: int = 0,
    target_columns: bool = False,
    he_reader: str = "auto",
) -> Path:
    """Write patches, ``expression.h5ad`` and ``manifest.csv``; return the manifest path.

    Args:
        sources: Space Ranger folders / spatial h5ad files, as a list or ``{sample name: path}``.
        out_dir: Output folder.
        tile_um: Side of the square patch in µm (HEST-bench uses 224 px at 0.5 µm/px = 112 µm).
        patch_px: Side of the written patch in pixels.
        image: ``"auto"`` (sharpest non-blank), ``"fullres"``, ``"hires"`` or ``"lowres"``.
        fullres_images: Sample name -> full-resolution H&E.
        panel: ``"intersection"`` or ``"union"`` of the samples' genes.
        id_type: Key genes by ``"symbol"`` or ``"ensembl"``.
        normalize: ``normalize_total`` + ``log1p``; ``None`` = only when the values are integer counts.
        n_hvg: HVGs marked and written as ``hvg:<gene>`` target columns.
        in_tissue_only: Keep spots flagged ``in_tissue`` only.
        split_by: ``"sample"`` (whole samples go to one split; ``group`` = sample) or ``"spot"``; default:
            by sample when there are several, else by spot.
        eval_fraction: Fraction of records (or samples) in ``eval``.
        seed: Split seed.
        target_columns: Also write the HVG expression as ``hvg:<gene>`` manifest columns.
        he_reader: How full-resolution H&E files are read: ``"auto"`` (pyramidal slides through the
            pathology plugin's reader when it is installed, region by region; other images whole),
            ``"pathology"`` or ``"plain"``.

    Raises:
        ReadError: A sample cannot be read or a spot lies outside its image (names the file).
        ConfigError: Bad options.
    """
    import pandas as pd
    from PIL import Image
    from scibind.data.splits import assign_splits

    from scibind_spatial_omics.panels import harmonize

    if he_reader not in HE_READERS:
        raise ConfigError(f"he_reader must be one of {HE_READERS}, got {he_reader!r}")
    if tile_um <= 0 or patch_px < 1 or not 0 < eval_fraction < 1:
        raise ConfigError(
            f"need tile_um > 0, patch_px >= 1, 0 < eval_fraction < 1; "
            f"got {tile_um}, {patch_px}, {eval_fraction}"
        )
    named = (
        dict(sources)
        if isinstance(sources, Mapping)
        else {Path(s).stem if Path(s).is_file() else Path(s).name: s for s in sources}
    )
    if len(named) != len(list(sources)):
        raise ConfigError("two sources share a name; pass {name: path}")
    out = Path(out_dir)
    (out / "patches").mkdir(parents=True, exist_ok=True)
    expressions: dict[str, Any] = {}
    geometry: dict[str, Any] = {}
    records: list[dict[str, Any]] = []
    for name, source in named.items():
        fullres = (fullres_images or {}).get(name)
        sample = load_sample(source, fullres_image=fullres, name=name, he_reader=he_reader)
        full = sample.read_expression()
        obs_names = [str(b) for b in full.obs_names]
        rows = [i for i, b in enumerate(obs_names) if b in sample.positions.index]
        if len(rows) < len(obs_names):
            missing = [b for b in obs_names if b not in sample.positions.index]
            raise ReadError(
                f"{len(missing)} barcodes of the matrix are not in the positions (e.g. {missing[:3]})",
                path=source,
            )
        barcodes = [obs_names[i] for i in rows]
        in_tissue = sample.positions.loc[barcodes, "in_tissue"].to_numpy().astype(bool)
        if in_tissue_only:
            rows = [r for r, keep in zip(rows, in_tissue, strict=True) if keep]
            barcodes = [obs_names[i] for i in rows]
        img = sample.image(image)
        mpp_image = sample.mpp_fullres / img.scalef
        size_px = tile_um / mpp_image
        centres = sample.spot_pixels(img, barcodes)
        folder = out / "patches" / name
        folder.mkdir(parents=True, exist_ok=True)
        for barcode, (row, col) in zip(barcodes, centres, strict=True):
            patch = crop_patch(img, (float(row), float(col)), size_px, patch_px)
            Image.fromarray(patch).save(folder / f"{barcode}.png")
            records.append({"barcode": barcode, "batch": name, "image": f"patches/{name}/{barcode}.png"})
        expressions[name] = full[rows].copy()
        geometry[name] = {
            "source": str(source),
            "image": img.name,
            "image_file": str(img.path),
            "scalef": img.scalef,
            "mpp_fullres": sample.mpp_fullres,
            "mpp_image": mpp_image,
            "patch_size_image_px": size_px,
            "upsampled": bool(size_px < patch_px),
            "n_spots": len(barcodes),
            "he_reader": img.reader,
        }
        if img.slide is not None:
            geometry[name].update(slide_geometry(img.slide, size_px, patch_px))
            img.slide.close()
        if isinstance(sample, XeniumSample):
            geometry[name]["alignment_he_px_to_um"] = sample.alignment.tolist()
            geometry[name]["n_cells_off_image"] = int((sample.positions["in_tissue"] == 0).sum())
            geometry[name]["expression_file"] = sample.matrix_path.name
            if "xenium_transcripts" in full.uns:  # counted from transcripts.parquet
                geometry[name]["transcripts"] = {
                    k: v.item() if hasattr(v, "item") else v
                    for k, v in full.uns["xenium_transcripts"].items()
                }
    do_normalize = all(_is_counts(a) for a in expressions.values()) if normalize is None else normalize
    merged = harmonize(expressions, panel=panel, id_type=id_type, normalize=do_normalize, n_hvg=n_hvg)
    record = json.loads(merged.uns["scibind"])
    record["patches"] = {"tile_um": tile_um, "patch_px": patch_px, "samples": geometry}
    merged.uns["scibind"] = json.dumps(record, sort_keys=True)
    atomic_replace(out / "expression.h5ad", lambda tmp: merged.write_h5ad(tmp))
    frame = pd.DataFrame(records)
    frame.insert(0, "id", [str(i) for i in merged.obs_names])
    frame["gene_expression"] = [f"expression.h5ad#{i}" for i in frame["id"]]
    several = len(named) > 1
    by_sample = (split_by or ("sample" if several else "spot")) == "sample"
    fractions = {"train": 1.0 - eval_fraction, "eval": eval_fraction}
    groups = frame["batch"].tolist() if by_sample else None
    frame["split"] = assign_splits(frame["id"].tolist(), groups, fractions, seed=seed)
    if by_sample:
        frame["group"] = frame["batch"]
    hvgs = record.get("hvg", {}).get("genes", [])
    if hvgs and target_columns:
        sub = merged[:, hvgs].X
        dense = sub.toarray() if hasattr(sub, "toarray") else np.asarray(sub)
        targets = pd.DataFrame(np.round(dense, 5), columns=[f"{HVG_PREFIX}{g}" for g in hvgs])
        frame = pd.concat([frame.drop(columns=["barcode"]), targets], axis=1)
    else:
        frame = frame.drop(columns=["barcode"])
    path = out / "manifest.csv"
    atomic_replace(path, lambda tmp: frame.to_csv(tmp, index=False))
    return path


def make_visium_spots(
    out_dir: str | Path,
    *,
    sources: Sequence[str] | Mapping[str, str] | None = None,
    grid: int = 16,
    **options: Any,
) -> Path:
    """Dataset generator of ``spatial_omics/visium-spots``: :func:`build_spot_pairs` of ``sources``.

    Without ``sources``, two synthetic donors in the Space Ranger layout (``grid`` x ``grid`` spots each) are
    generated first (:func:`scibind_spatial_omics.synthetic.make_synthetic_visium`).

    Raises:
        ConfigError: Unknown options.
    """
    out = Path(out_dir)
    if sources is None:
        from scibind_spatial_omics.synthetic import make_synthetic_visium

        sources = {
            p.name: str(p)
            for p in make_synthetic_visium(out / "raw", grid=grid, seed=int(options.get("seed", 0)))
        }
    return build_spot_pairs(sources, out, **options)
