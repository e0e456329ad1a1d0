"""Synthetic Visium samples in the real Space Ranger layout, for the ``visium-spots`` dataset and tests.

Each sample is a grid of spots over a section with ``n_regions`` tissue regions (a smooth random partition).
A region sets both the H&E look of its pixels (hue, nuclei density) and a gene program (which genes are
high), so a patch predicts its spot's expression. Each sample (donor) adds a batch effect: a colour shift
of the stain and a per-gene scaling of the counts.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

__all__ = ["make_synthetic_visium", "make_synthetic_xenium", "write_transcripts"]

SPOT_DIAMETER_FULLRES = 89.0
SPOT_SPACING_UM = 100.0
HIRES_SCALEF = 0.2
LOWRES_SCALEF = 0.05


def _write_10x_h5(
    path: Path,
    counts: np.ndarray,
    barcodes: list[str],
    genes: list[str],
    ids: list[str],
    feature_types: list[str] | None = None,
) -> None:
    import h5py
    import scipy.sparse as sp

    csc = sp.csc_matrix(counts.T.astype(np.int32))  # features x barcodes
    with h5py.File(path, "w") as handle:
        group = handle.create_group("matrix")
        group["barcodes"] = np.array([b.encode() for b in barcodes])
        group["data"] = csc.data
        group["indices"] = csc.indices.astype(np.int64)
        group["indptr"] = csc.indptr.astype(np.int64)
        group["shape"] = np.array(csc.shape, dtype=np.int32)
        features = group.create_group("features")
        features["id"] = np.array([i.encode() for i in ids])
        features["name"] = np.array([g.encode() for g in genes])
        types = feature_types or ["Gene Expression"] * len(genes)
        features["feature_type"] = np.array([t.encode() for t in types])
        features["genome"] = np.array([b"synthetic"] * len(genes))


def make_synthetic_visium(
    out_dir: str | Path,
    *,
    n_samples: int = 2,
    grid: int = 16,
    n_genes: int = 120,
    n_regions: int = 4,
    seed: int = 0,
) -> list[Path]:
    """Write ``n_samples`` Space Ranger ``outs/`` folders and return them.

    Args:
        out_dir: Parent folder (``donor_0/``, ``donor_1/``, ... are created).
        n_samples: Samples (donors), each with its own batch effect.
        grid: Spots per side.
        n_genes: Genes (shared panel; named ``GENE0001``... with ids ``ENSG9...``).
        n_regions: Tissue regions (image look + gene program).
        seed: Seed of every random draw.
    """
    from PIL import Image

    rng = np.random.default_rng(seed)
    genes = [f"GENE{i:04d}" for i in range(n_genes)]
    ids = [f"ENSG9{i:010d}" for i in range(n_genes)]
    programs = rng.gamma(0.6, 1.0, size=(n_regions, n_genes)) * 3
    hues = rng.uniform([150, 60, 120], [240, 140, 220], size=(n_regions, 3))
    density = rng.uniform(0.02, 0.25, size=n_regions)
    mpp_fullres = 55.0 / SPOT_DIAMETER_FULLRES
    spacing_px = SPOT_SPACING_UM / mpp_fullres
    margin = 2 * spacing_px
    side_full = int(2 * margin + (grid - 1) * spacing_px)
    side = int(side_full * HIRES_SCALEF)
    folders = []
    for s in range(n_samples):
        folder = Path(out_dir) / f"donor_{s}"
        (folder / "spatial").mkdir(parents=True, exist_ok=True)
        anchors = rng.uniform(0, side, size=(n_regions, 2))
        yy, xx = np.mgrid[0:side, 0:side]
        dist = (yy[..., None] - anchors[:, 0]) ** 2 + (xx[..., None] - anchors[:, 1]) ** 2
        region_map = dist.argmin(-1)
        shift = rng.normal(0, 18, size=3)
        pixels = hues[region_map] + shift + rng.normal(0, 12, size=(side, side, 3))
        nuclei = rng.random((side, side)) < density[region_map]
        pixels[nuclei] = pixels[nuclei] * 0.45
        hires = np.clip(pixels, 0, 255).astype(np.uint8)
        Image.fromarray(hires).save(folder / "spatial" / "tissue_hires_image.png")
        low_side = int(side_full * LOWRES_SCALEF)
        Image.fromarray(hires).resize((low_side, low_side), Image.Resampling.BOX).save(
            folder / "spatial" / "tissue_lowres_image.png"
        )
        gene_scale = rng.lognormal(0, 0.3, size=n_genes)
        rows, barcodes, counts, lines = [], [], [], []
        for r in range(grid):
            for c in range(grid):
                row_full = margin + r * spacing_px
                col_full = margin + c * spacing_px + (spacing_px / 2 if r % 2 else 0)
                region = region_map[
                    min(int(row_full * HIRES_SCALEF), side - 1), min(int(col_full * HIRES_SCALEF), side - 1)
                ]
                barcode = f"S{s}R{r:02d}C{c:02d}-1"
                barcodes.append(barcode)
                counts.append(rng.poisson(programs[region] * gene_scale))
                lines.append(f"{barcode},1,{r},{2 * c + r % 2},{round(row_full)},{round(col_full)}")
                rows.append(region)
        _write_10x_h5(folder / "filtered_feature_bc_matrix.h5", np.array(counts), barcodes, genes, ids)
        (folder / "spatial" / "tissue_positions_list.csv").write_text(
            "\n".join(lines) + "\n", encoding="utf-8"
        )
        (folder / "spatial" / "scalefactors_json.json").write_text(
            json.dumps(
                {
                    "spot_diameter_fullres": SPOT_DIAMETER_FULLRES,
                    "tissue_hires_scalef": HIRES_SCALEF,
                    "fiducial_diameter_fullres": SPOT_DIAMETER_FULLRES * 1.6,
                    "tissue_lowres_scalef": LOWRES_SCALEF,
                }
            ),
            encoding="utf-8",
        )
        folders.append(folder)
    return folders


XENIUM_STAINS = np.array([[225, 130, 175], [150, 90, 170], [240, 200, 215]], dtype=np.float64)
"""H&E-like colours of the synthetic Xenium section's three vertical bands (region 0, 1, 2)."""


def make_synthetic_xenium(
    out_dir: str | Path,
    *,
    n_cells: int = 90,
    n_genes: int = 30,
    height: int = 240,
    width: int = 300,
    mpp: float = 0.5,
    angle_deg: float = 10.0,
    offset_um: tuple[float, float] = (1200.0, 800.0),
    cells_format: str = "parquet",
    matrix_format: str = "h5",
    seed: int = 0,
) -> Path:
    """Write a small Xenium-style folder in the real formats and return it.

    The H&E (``he_image.ome.tif``) has three vertical bands (:data:`XENIUM_STAINS`); each cell gets the gene
    program of the band its centre lies in. ``he_imagealignment.csv`` maps H&E pixels to µm with a rotation
    by ``angle_deg``, scale ``mpp`` and an offset; cell centres are written in µm through it.

    Files: ``cells.parquet`` or ``cells.csv.gz`` (``cell_id``, ``x_centroid``, ``y_centroid``,
    ``transcript_counts``, ``cell_area``), ``cell_feature_matrix.h5`` (10x HDF5 with two negative-control
    probes beside the genes) or ``cell_feature_matrix.csv`` (cell x gene table), ``experiment.xenium``.

    Args:
        out_dir: The folder to create.
        n_cells: Cells (all on the H&E).
        n_genes: Genes; genes ``3k + r`` are the program of band ``r``.
        height: H&E rows.
        width: H&E columns.
        mpp: µm per H&E pixel.
        angle_deg: Rotation of the alignment.
        offset_um: Xenium coordinates of H&E pixel (0, 0).
        cells_format: ``"parquet"`` or ``"csv.gz"``.
        matrix_format: ``"h5"`` (10x), ``"csv"`` or ``"transcripts"`` (``transcripts.parquet`` only, see
            :func:`write_transcripts`).
        seed: Random seed.
    """
    import pandas as pd
    import tifffile

    rng = np.random.default_rng(seed)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    band = width / 3.0
    cols_grid = np.arange(width)
    region_of_col = np.minimum((cols_grid // band).astype(int), 2)
    image = XENIUM_STAINS[region_of_col][None, :, :].repeat(height, 0)
    image = np.clip(image + rng.normal(0, 6, size=image.shape), 0, 255).astype(np.uint8)
    tifffile.imwrite(out / "he_image.ome.tif", image, photometric="rgb")
    theta = np.deg2rad(angle_deg)
    rot = mpp * np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    alignment = np.eye(3)
    alignment[:2, :2] = rot
    alignment[:2, 2] = offset_um
    (out / "he_imagealignment.csv").write_text(
        "\n".join(",".join(f"{v:.10g}" for v in row) for row in alignment) + "\n", encoding="utf-8"
    )
    margin = 12
    px_col = rng.uniform(margin, width - margin, n_cells)
    px_row = rng.uniform(margin, height - margin, n_cells)
    # Keep cells away from band edges so their patch centre is unambiguous.
    px_col = np.where(
        np.abs((px_col % band) - band / 2) > band / 2 - 6, (px_col // band + 0.5) * band, px_col
    )
    regions = np.minimum((px_col // band).astype(int), 2)
    um = (alignment @ np.vstack([px_col, px_row, np.ones(n_cells)])).T
    ids = [f"cell{i:04d}-1" for i in range(n_cells)]
    counts = rng.poisson(1.0, size=(n_cells, n_genes)).astype(np.int64)
    for r in range(3):
        counts[np.ix_(regions == r, np.arange(r, n_genes, 3))] += rng.poisson(
            8, size=((regions == r).sum(), 1)
        )
    genes = [f"XG{j:03d}" for j in range(n_genes)]
    cells = pd.DataFrame(
        {
            "cell_id": ids,
            "x_centroid": um[:, 0],
            "y_centroid": um[:, 1],
            "transcript_counts": counts.sum(1),
            "cell_area": rng.uniform(40, 120, n_cells),
        }
    )
    if cells_format == "parquet":
        cells.to_parquet(out / "cells.parquet", index=False)
    else:
        cells.to_csv(out / "cells.csv.gz", index=False)
    if matrix_format == "h5":
        controls = rng.poisson(0.2, size=(n_cells, 2))
        _write_10x_h5(
            out / "cell_feature_matrix.h5",
            np.hstack([counts, controls]),
            ids,
            [*genes, "NegControlProbe_00001", "NegControlProbe_00002"],
            [f"ENSG9{j:010d}" for j in range(n_genes)] + ["NegControlProbe_00001", "NegControlProbe_00002"],
            ["Gene Expression"] * n_genes + ["Negative Control Probe"] * 2,
        )
    elif matrix_format == "transcripts":
        write_transcripts(out / "transcripts.parquet", counts, ids, genes, alignment, px_col, px_row, rng)
    else:
        table = pd.DataFrame(counts, columns=genes)
        table.insert(0, "cell_id", ids)
        table.to_csv(out / "cell_feature_matrix.csv", index=False)
    (out / "experiment.xenium").write_text(json.dumps({"pixel_size": 0.2125}), encoding="utf-8")
    return out


def write_transcripts(
    path: Path,
    counts: np.ndarray,
    cell_ids: list[str],
    genes: list[str],
    alignment: np.ndarray,
    px_col: np.ndarray,
    px_row: np.ndarray,
    rng: np.random.Generator,
    *,
    binary: bool = False,
) -> None:
    """Write a Xenium ``transcripts.parquet`` whose Q20, in-cell, gene molecules are exactly ``counts``.

    Columns as Xenium Onboard Analysis writes them: ``transcript_id``, ``cell_id``, ``overlaps_nucleus``,
    ``feature_name``, ``x_location``, ``y_location``, ``z_location`` (µm), ``qv``, ``fov_name``,
    ``nucleus_distance``, ``codeword_index``, ``is_gene``. Besides the counted molecules it adds some that
    must not be counted: low quality (``qv < 20``), ``UNASSIGNED`` to a cell, and control probes/codewords
    (``NegControlProbe_*``, ``NegControlCodeword_*``, ``UnassignedCodeword_*``, ``BLANK_*``).

    Args:
        path: The file.
        counts: ``int[cells, genes]``.
        cell_ids: Cell ids (rows of ``counts``).
        genes: Gene names (columns).
        alignment: H&E pixel -> µm matrix (molecules are placed near their cell's centre).
        px_col: Cell centre columns (H&E pixels).
        px_row: Cell centre rows.
        rng: Random generator.
        binary: Store ``cell_id``/``feature_name`` as binary (old Xenium files).
    """
    import pandas as pd

    cell_of, gene_of = np.nonzero(counts)
    reps = counts[cell_of, gene_of]
    cells = np.repeat(np.asarray(cell_ids, dtype=object)[cell_of], reps)
    features = np.repeat(np.asarray(genes, dtype=object)[gene_of], reps)
    qv = rng.uniform(20.0, 40.0, len(cells))
    extra = max(10, len(cells) // 10)
    pick = rng.integers(0, len(cell_ids), extra)
    controls = ["NegControlProbe_00001", "NegControlCodeword_0500", "UnassignedCodeword_0042", "BLANK_0007"]
    cells = np.concatenate(
        [
            cells,
            np.asarray(cell_ids, dtype=object)[pick],  # low quality
            np.full(extra, "UNASSIGNED", dtype=object),  # outside every cell
            np.asarray(cell_ids, dtype=object)[rng.integers(0, len(cell_ids), extra)],  # controls
        ]
    )
    features = np.concatenate(
        [
            features,
            np.asarray(genes, dtype=object)[rng.integers(0, len(genes), extra)],
            np.asarray(genes, dtype=object)[rng.integers(0, len(genes), extra)],
            np.asarray(controls, dtype=object)[rng.integers(0, len(controls), extra)],
        ]
    )
    qv = np.concatenate([qv, rng.uniform(0.0, 19.9, extra), rng.uniform(20.0, 40.0, 2 * extra)])
    index = {c: i for i, c in enumerate(cell_ids)}
    centre = np.array([index.get(c, 0) for c in cells])
    um = alignment @ np.vstack([px_col[centre], px_row[centre], np.ones(len(cells))])
    order = rng.permutation(len(cells))
    frame = pd.DataFrame(
        {
            "transcript_id": np.arange(len(cells), dtype=np.uint64) + 281474976710657,
            "cell_id": cells,
            "overlaps_nucleus": rng.integers(0, 2, len(cells)).astype(np.uint8),
            "feature_name": features,
            "x_location": um[0] + rng.normal(0, 1.5, len(cells)),
            "y_location": um[1] + rng.normal(0, 1.5, len(cells)),
            "z_location": rng.uniform(10, 25, len(cells)),
            "qv": qv,
            "fov_name": "A1",
            "nucleus_distance": rng.uniform(0, 5, len(cells)),
            "codeword_index": rng.integers(0, 500, len(cells)).astype(np.int32),
            "is_gene": ~pd.Series(features).str.startswith(("NegControl", "Unassigned", "BLANK")).to_numpy(),
        }
    ).iloc[order]
    if binary:
        frame["cell_id"] = [c.encode() for c in frame["cell_id"]]
        frame["feature_name"] = [f.encode() for f in frame["feature_name"]]
    frame.to_parquet(path, index=False)
