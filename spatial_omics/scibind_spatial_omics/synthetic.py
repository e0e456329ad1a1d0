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

__all__ = ["make_synthetic_visium"]

SPOT_DIAMETER_FULLRES = 89.0
SPOT_SPACING_UM = 100.0
HIRES_SCALEF = 0.2
LOWRES_SCALEF = 0.05


def _write_10x_h5(
    path: Path, counts: np.ndarray, barcodes: list[str], genes: list[str], ids: list[str]
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
        features["feature_type"] = np.array([b"Gene Expression"] * len(genes))
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
