"""The ``pathology/synthetic-slides`` dataset: pyramidal JPEG TIFF slides with diagnosis reports.

Each slide is a real tiled, JPEG-compressed pyramidal TIFF (OpenSlide ``generic-tiff``, µm/px in the
resolution tags) with one or two tissue regions on white glass. The tissue's texture depends on the
diagnosis (nuclear density, size and colour) and its staining on a second attribute (strong or faint). The
report names both in one of several phrasings. The generator then tiles every slide (tissue mask, exact
µm/px) and caches tile features of a frozen, seeded ``pathology/tiny`` CNN, so the manifest's ``slide``
column points at TRIDENT-layout feature files and training reads bags without touching the slides.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
from scibind.atomic import atomic_replace
from scibind.errors import ConfigError

__all__ = [
    "DIAGNOSES",
    "STAINS",
    "make_synthetic_slides",
    "render_tissue",
    "write_pyramid",
    "write_synthetic_slide",
]

DIAGNOSES: dict[str, dict[str, float]] = {
    # nuclei per 1000 µm², nucleus radius (µm), nuclear darkness (0..1), stroma pinkness
    "normal mucosa": {"density": 4.0, "radius": 2.5, "dark": 0.55, "pink": 0.9},
    "adenocarcinoma": {"density": 9.0, "radius": 4.5, "dark": 0.8, "pink": 0.6},
    "lymphoma": {"density": 22.0, "radius": 2.2, "dark": 0.95, "pink": 0.4},
    "necrosis": {"density": 1.5, "radius": 1.2, "dark": 0.35, "pink": 0.35},
}
STAINS: dict[str, float] = {"strong": 1.0, "faint": 0.45}
REPORTS = (
    "Sections show {dx}. The staining is {stain}.",
    "Diagnosis: {dx}; {stain} staining.",
    "Findings consistent with {dx}, with {stain} staining throughout.",
    "{stain} staining; the tissue shows {dx}.",
)


def render_tissue(rng: np.random.Generator, size: int, mpp: float, diagnosis: str, stain: str) -> np.ndarray:
    """An RGB ``uint8[size, size, 3]`` field of synthetic H&E-like tissue on white.

    Args:
        rng: Random generator.
        size: Side in pixels.
        mpp: µm/px (nuclear sizes and densities are physical).
        diagnosis: A key of :data:`DIAGNOSES`.
        stain: A key of :data:`STAINS`.
    """
    from scipy import ndimage

    spec, strength = DIAGNOSES[diagnosis], STAINS[stain]
    yy, xx = (np.mgrid[0:size, 0:size] / size).astype(np.float32)
    tissue = np.zeros((size, size), dtype=np.float32)
    for _ in range(rng.integers(1, 3)):
        cx, cy = rng.uniform(0.35, 0.65, 2)
        rx, ry = rng.uniform(0.25, 0.4, 2)
        tissue = np.maximum(tissue, 1.0 - ((xx - cx) / rx) ** 2 - ((yy - cy) / ry) ** 2)
    coarse = ndimage.gaussian_filter(rng.standard_normal((32, 32)), 1.5) * 6.0
    wobble = ndimage.zoom(coarse, size / 32, order=1)[:size, :size]
    inside = (tissue + wobble) > 0
    area_um2 = size * size * mpp * mpp
    n_nuclei = rng.poisson(spec["density"] * area_um2 / 1000.0)
    points = np.zeros((size, size), dtype=np.float32)
    ys, xs = rng.integers(0, size, n_nuclei), rng.integers(0, size, n_nuclei)
    np.add.at(points, (ys, xs), 1.0)
    sigma = spec["radius"] / mpp / 1.6
    nuclei = ndimage.gaussian_filter(points, sigma) * (2 * np.pi * sigma**2)
    nuclei = np.clip(nuclei * 2.2, 0, 1) * inside
    stroma = 0.75 + 0.25 * ndimage.gaussian_filter(rng.random((size, size), dtype=np.float32), 2.0)
    eosin = np.array([0.93, 0.55, 0.75], np.float32) * spec["pink"]
    eosin = eosin + np.array([0.95, 0.85, 0.9], np.float32) * (1 - spec["pink"])
    haem = np.array([0.25, 0.15, 0.45], np.float32)
    tissue_rgb = eosin[None, None] * stroma[..., None]
    tissue_rgb = tissue_rgb * (1 - nuclei[..., None] * spec["dark"]) + haem * nuclei[..., None] * spec["dark"]
    # faint staining: everything drifts towards the glass
    tissue_rgb = 1.0 - strength * (1.0 - tissue_rgb)
    rgb = np.where(inside[..., None], tissue_rgb, 0.97)
    rgb = rgb + rng.normal(0, 0.015, rgb.shape).astype(np.float32)
    return (np.clip(rgb, 0, 1) * 255).round().astype(np.uint8)


def write_pyramid(
    path: str | Path, level0: np.ndarray, mpp: float, *, levels: int = 3, tile: int = 256
) -> Path:
    """Write ``level0`` as a tiled JPEG pyramidal TIFF that OpenSlide opens (``generic-tiff``), atomically.

    Args:
        path: The ``.tif`` to write.
        level0: ``uint8[H, W, 3]``.
        mpp: µm/px of level 0 (stored in the resolution tags, centimetre unit).
        levels: Number of levels (each halves the previous one).
        tile: TIFF tile side.
    """
    import tifffile
    from PIL import Image

    kw: dict[str, Any] = {
        "tile": (tile, tile),
        "photometric": "rgb",
        "compression": "jpeg",
        "compressionargs": {"level": 90},
        "metadata": None,
    }
    pyramid = [level0]
    for _ in range(levels - 1):
        h, w = pyramid[-1].shape[:2]
        if min(h, w) < 2 * 16:
            break
        pyramid.append(
            np.asarray(Image.fromarray(pyramid[-1]).resize((w // 2, h // 2), Image.Resampling.BOX))
        )

    def write(tmp: Path) -> None:
        with tifffile.TiffWriter(tmp, bigtiff=False) as tw:
            tw.write(
                level0, subfiletype=0, resolution=(1e4 / mpp, 1e4 / mpp), resolutionunit="CENTIMETER", **kw
            )
            for lv in pyramid[1:]:
                tw.write(lv, subfiletype=1, **kw)

    return atomic_replace(path, write)


def write_synthetic_slide(
    folder: str | Path,
    name: str = "synthetic.tif",
    *,
    diagnosis: str = "adenocarcinoma",
    stain: str = "strong",
    size_px: int = 512,
    mpp: float = 0.5,
    seed: int = 0,
) -> Path:
    """Write one synthetic slide (``size_px`` square at ``mpp``) as a pyramidal TIFF; return its path."""
    rng = np.random.default_rng(seed)
    return write_pyramid(Path(folder) / name, render_tissue(rng, size_px, mpp, diagnosis, stain), mpp)


def make_synthetic_slides(
    out_dir: str | Path,
    *,
    n: int = 128,
    size_px: int = 512,
    mpp: float = 0.5,
    tile_mpp: float = 1.0,
    tile_size: int = 48,
    encoder: str = "pathology/tiny",
    encoder_kwargs: dict[str, Any] | None = None,
    seed: int = 0,
) -> Path:
    """Write ``n`` slides, their tile features and ``manifest.csv``; return the manifest path.

    Manifest columns: ``id``, ``slide`` (feature file ``features/<id>.h5``: a ``wsi_bag``), ``report``
    (text), ``diagnosis``, ``stain``, ``finding`` (both), ``slide_file`` (the ``.tif``), ``split``
    (80/20). Identical arguments give identical files.

    Args:
        out_dir: Output folder.
        n: Number of slides.
        size_px: Side of level 0 in pixels.
        mpp: µm/px of level 0.
        tile_mpp: µm/px of the tiles.
        tile_size: Tile side in pixels at ``tile_mpp``.
        encoder: Frozen tile encoder for the cached features.
        encoder_kwargs: Its options (default ``{"seed": 0}`` for ``pathology/tiny``).
        seed: Seed of every random draw.

    Raises:
        ConfigError: An argument is out of range.
    """
    from scibind.data.splits import assign_splits

    from scibind_pathology.features import extract_features
    from scibind_pathology.tiling import TilingConfig

    if n < 4 or size_px < 128 or tile_mpp < mpp:
        raise ConfigError(f"need n >= 4, size_px >= 128 and tile_mpp >= mpp; got {n}, {size_px}, {tile_mpp}")
    if encoder_kwargs is None:
        encoder_kwargs = {"seed": 0} if encoder == "pathology/tiny" else {}
    out = Path(out_dir)
    rng = np.random.default_rng(seed)
    names, stains = list(DIAGNOSES), list(STAINS)
    tiling = TilingConfig(
        mpp=tile_mpp, tile_size=tile_size, min_tissue=0.25, mask_mpp=4.0, min_area_um2=2000.0
    )
    rows = []
    for i in range(n):
        dx, stain = names[i % len(names)], stains[(i // len(names)) % len(stains)]
        record = f"slide_{i:04d}"
        slide = write_pyramid(
            out / "slides" / f"{record}.tif", render_tissue(rng, size_px, mpp, dx, stain), mpp
        )
        cache = extract_features(
            slide, out / "features" / ".cache", tiling=tiling, encoder=encoder, encoder_kwargs=encoder_kwargs
        )
        features = out / "features" / f"{record}.h5"
        cache.replace(features)
        report = REPORTS[int(rng.integers(len(REPORTS)))].format(dx=dx, stain=stain)
        rows.append(
            {
                "id": record,
                "slide": f"features/{record}.h5",
                "report": report[0].upper() + report[1:],
                "diagnosis": dx,
                "stain": stain,
                "finding": f"{dx}, {stain} staining",
                "slide_file": f"slides/{record}.tif",
            }
        )
    cache_dir = out / "features" / ".cache"
    if cache_dir.is_dir():
        cache_dir.rmdir()
    ids = [r["id"] for r in rows]
    for row, split in zip(rows, assign_splits(ids, ids, seed=seed), strict=True):
        row["split"] = split

    def write(tmp: Path) -> None:
        with open(tmp, "w", encoding="utf-8", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)

    return atomic_replace(out / "manifest.csv", write)
