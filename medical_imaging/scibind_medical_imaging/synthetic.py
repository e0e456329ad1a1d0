"""The ``medical_imaging/synthetic-chest-ct`` dataset: chest CT phantoms with one described nodule each.

Each record is a small chest phantom defined in RAS world coordinates (mm): a soft-tissue body (40 HU) in
air, two lungs (-850 HU) and one nodule whose lobe (left/right, upper/lower), size (small 2.5 mm / large
5 mm radius) and density (solid 30 HU / calcified 500 HU) the templated report states. The phantom is
sampled on a per-record grid (voxel size and orientation vary: RAS or LAS NIfTI, LPS DICOM), so a model only
sees consistent anatomy after the reader's reorientation and resampling. A quarter of the records are
written as DICOM series (one file per slice, shuffled file names, synthetic identifiers in the headers),
the rest as NIfTI. Record and group ids are salted pseudonyms of the synthetic patient and study.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scibind.atomic import atomic_replace
from scibind.data.splits import assign_splits
from scibind.errors import ConfigError

from scibind_medical_imaging.phi import pseudonym
from scibind_medical_imaging.writers import write_dicom_series, write_nifti

__all__ = ["DEMO_READER_OPTIONS", "LOCATIONS", "Phantom", "make_synthetic_chest_ct", "phantom", "radiograph"]

LOCATIONS: dict[str, tuple[float, float]] = {
    "right upper": (12.0, 8.0),
    "right lower": (12.0, -8.0),
    "left upper": (-12.0, 8.0),
    "left lower": (-12.0, -8.0),
}
"""Lobe -> (x, z) centre in RAS mm (+x is the patient's right, +z superior)."""
SIZES_MM = {"small": 2.5, "large": 5.0}
DENSITIES_HU = {"solid": 30.0, "calcified": 500.0}
GRIDS: tuple[tuple[float, float, float], ...] = ((2.0, 2.0, 2.0), (1.5, 1.5, 2.5), (2.5, 2.5, 1.5))
FOV_MM = 48.0
TEMPLATES = (
    "A {size} {density} nodule in the {location} lobe.",
    "Chest CT shows a {size} {density} nodule, {location} lobe.",
    "{location} lobe: {size} {density} pulmonary nodule.",
    "Findings: {density} nodule, {size}, located in the {location} lobe.",
)
DEMO_READER_OPTIONS: dict[str, Any] = {
    "orientation": "RAS",
    "spacing_mm": [2.0, 2.0, 2.0],
    "window_hu": [-1000, 600],
    "roi_size": [24, 24, 24],
    "cache_ram_mb": 256,
}
"""``medical_imaging/volume`` options of the demo recipes (RAS, 2 mm, lung-to-bone window, 24^3 crop)."""
DEMO_SALT = b"scibind-synthetic-chest-ct-demo-salt"


@dataclass(frozen=True)
class Phantom:
    """One record's anatomy: body scale, nodule lobe, radius, density and centre offset."""

    location: str
    size: str
    density: str
    scale: tuple[float, float, float]
    offset_mm: tuple[float, float, float]

    @classmethod
    def draw(cls, rng: np.random.Generator) -> Phantom:
        """A random phantom."""
        locations, sizes, densities = list(LOCATIONS), list(SIZES_MM), list(DENSITIES_HU)
        return cls(
            location=locations[rng.integers(len(locations))],
            size=sizes[rng.integers(len(sizes))],
            density=densities[rng.integers(len(densities))],
            scale=tuple(1.0 + rng.uniform(-0.08, 0.08, size=3)),
            offset_mm=tuple(rng.uniform(-2.0, 2.0, size=3)),
        )


def phantom(points_mm: np.ndarray, anatomy: Phantom) -> np.ndarray:
    """HU values of one phantom at RAS world points ``[..., 3]`` (body, lungs, nodule; no noise)."""
    x, y, z = points_mm[..., 0], points_mm[..., 1], points_mm[..., 2]
    scale = anatomy.scale
    body = (x / (22 * scale[0])) ** 2 + (y / (17 * scale[1])) ** 2 + (z / (23 * scale[2])) ** 2 <= 1
    values = np.where(body, 40.0, -1000.0)
    for side in (1.0, -1.0):
        lung = ((x - side * 11) / 8.5) ** 2 + (y / 12) ** 2 + (z / 19) ** 2 <= 1
        values = np.where(lung, -850.0, values)
    cx, cz = LOCATIONS[anatomy.location]
    centre = np.array([cx, 0.0, cz]) + np.array(anatomy.offset_mm)
    nodule = ((points_mm - centre) ** 2).sum(axis=-1) <= SIZES_MM[anatomy.size] ** 2
    return np.where(nodule, DENSITIES_HU[anatomy.density], values)


def radiograph(anatomy: Phantom, rng: np.random.Generator, pixel_mm: float = 1.5) -> np.ndarray:
    """A frontal (AP) projection of the phantom as ``uint8`` ``[H, W]``, radiology display convention.

    Rows run superior -> inferior and columns from the patient's right to left (the patient's right is
    on the image's left). Attenuation is summed along the anterior-posterior axis; noise is added.
    """
    n = int(np.rint(FOV_MM / pixel_mm))
    half = (n - 1) * pixel_mm / 2
    axis = np.linspace(half, -half, n)  # +x (right) first; +z (superior) first
    depth = np.linspace(-half, half, n)
    z, x, y = np.meshgrid(axis, axis, depth, indexing="ij")
    hu = phantom(np.stack([x, y, z], axis=-1), anatomy)
    attenuation = np.clip((hu + 1000.0) / 1000.0, 0, None).sum(axis=-1) * pixel_mm
    image = attenuation / (2.5 * FOV_MM) * 255 + rng.normal(0, 3.0, size=attenuation.shape)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def _grid(rng: np.random.Generator, layout: str) -> tuple[np.ndarray, tuple[int, int, int]]:
    """A voxel -> RAS affine covering the field of view, with a random voxel size and the layout's axes."""
    spacing = np.array(GRIDS[rng.integers(len(GRIDS))])
    shape = tuple(int(np.rint(FOV_MM / s)) for s in spacing)
    signs = {"RAS": (1, 1, 1), "LAS": (-1, 1, 1), "LPS": (-1, -1, 1)}[layout]
    affine = np.eye(4)
    for axis in range(3):
        affine[axis, axis] = signs[axis] * spacing[axis]
        extent = (shape[axis] - 1) * spacing[axis]
        affine[axis, 3] = -signs[axis] * extent / 2
    return affine, shape  # type: ignore[return-value]


def _points(affine: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    index = np.stack(np.meshgrid(*(np.arange(s) for s in shape), indexing="ij"), axis=-1).astype(np.float64)
    return index @ affine[:3, :3].T + affine[:3, 3]


def make_synthetic_chest_ct(
    out_dir: str | Path,
    *,
    n: int = 240,
    seed: int = 0,
    dicom_fraction: float = 0.25,
    noise_hu: float = 25.0,
    radiographs: bool = False,
) -> Path:
    """Write the synthetic chest CT dataset and return its manifest (``manifest.csv``).

    Columns: ``id`` (pseudonym of patient + study), ``ct`` (a ``.nii.gz`` file or a DICOM series folder),
    ``report`` (inline text), ``location``, ``size``, ``density``, ``finding`` (all three), ``format``,
    ``group`` (patient pseudonym) and ``split`` (80/20, group-safe). The recipes read the volumes with
    :data:`DEMO_READER_OPTIONS` (``towers.ct.reader_kwargs``). Identical arguments give identical files.

    Args:
        out_dir: Output folder (created).
        n: Number of records (patients; one study each).
        seed: Seed of every random draw.
        dicom_fraction: Fraction of records written as DICOM series instead of NIfTI.
        noise_hu: Standard deviation of Gaussian noise added to every voxel (HU).
        radiographs: Also write a frontal projection of the same phantom as an 8-bit PNG (column
            ``xray``, 32 x 32 at 1.5 mm), for 3D <-> 2D and image <-> image retrieval.

    Raises:
        ConfigError: An argument is out of range.
    """
    if n < 8 or not 0.0 <= dicom_fraction <= 1.0 or noise_hu < 0:
        raise ConfigError(
            f"need n >= 8, 0 <= dicom_fraction <= 1, noise_hu >= 0; got {n}, {dicom_fraction}, {noise_hu}"
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows: dict[str, list[Any]] = {
        k: [] for k in ("id", "ct", "report", "location", "size", "density", "finding", "format", "group")
    }
    if radiographs:
        rows["xray"] = []
    for i in range(n):
        anatomy = Phantom.draw(rng)
        location, size, density = anatomy.location, anatomy.size, anatomy.density
        as_dicom = rng.random() < dicom_fraction
        layout = "LPS" if as_dicom else ("RAS", "LAS")[int(rng.integers(2))]
        affine, shape = _grid(rng, layout)
        values = phantom(_points(affine, shape), anatomy)
        values = values + rng.normal(0.0, noise_hu, size=values.shape)
        patient = f"SYNTH{seed:03d}{i:05d}"
        study = f"1.2.826.0.1.3680043.10.1234.{seed}.{i}"
        record = pseudonym(DEMO_SALT, patient, study, prefix="ct-")
        if as_dicom:
            folder = out / "dicom" / record
            header = {
                "PatientName": f"SYNTHETIC^PATIENT^{i:05d}",
                "PatientID": patient,
                "StudyInstanceUID": study,
            }
            write_dicom_series(values, affine, folder, header=header, seed=seed * 100003 + i)
            rows["ct"].append(f"dicom/{record}")
        else:
            write_nifti(values, affine, out / "nifti" / f"{record}.nii.gz")
            rows["ct"].append(f"nifti/{record}.nii.gz")
        if radiographs:
            from PIL import Image

            (out / "xray").mkdir(exist_ok=True)
            xray_rng = np.random.default_rng([seed, i, 1])  # separate stream: the volumes do not change
            Image.fromarray(radiograph(anatomy, xray_rng)).save(out / "xray" / f"{record}.png")
            rows["xray"].append(f"xray/{record}.png")
        template = TEMPLATES[rng.integers(len(TEMPLATES))]
        report = template.format(size=size, density=density, location=location)
        rows["id"].append(record)
        rows["report"].append(report[0].upper() + report[1:])
        rows["location"].append(location)
        rows["size"].append(size)
        rows["density"].append(density)
        rows["finding"].append(f"{size} {density} {location}")
        rows["format"].append("dicom" if as_dicom else "nifti")
        rows["group"].append(pseudonym(DEMO_SALT, patient, prefix="pat-"))
    rows["split"] = assign_splits(rows["id"], rows["group"], seed=seed)
    path = out / "manifest.csv"

    def write(tmp: Path) -> None:
        import pandas as pd

        pd.DataFrame(rows).to_csv(tmp, index=False)

    atomic_replace(path, write)
    return path
