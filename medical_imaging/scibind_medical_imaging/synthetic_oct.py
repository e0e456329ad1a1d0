"""``medical_imaging/synthetic-oct``: retinal OCT volumes (DICOM OPT and NIfTI) paired with en-face images.

Each record is a macular OCT cube of 32 B-scans x 32 A-scans x 32 depth samples over 6 x 6 x 2 mm
(0.1875 mm lateral and between B-scans, 0.0625 mm axial), laid out ``(i lateral, j depth, k slow)``: a
vitreous, a retina with a foveal pit and layered bands, a bright RPE band and the choroid, with speckle.
One lesion per record sits at a random place (``lesion_x_mm``, ``lesion_y_mm``) with a random radius:

* ``drusen``: the RPE is lifted into a dome, with medium-bright material beneath it;
* ``fluid``: a dark intraretinal cyst;
* ``atrophy``: the RPE is missing and the choroid below brightens (hypertransmission).

The en-face image (OCTCube-M's 2D view) is the mean over depth of the noise-free cube plus its own noise,
an 8-bit 32 x 32 PNG (rows: slow axis, columns: lateral axis), so cube and image show the lesion at the
same place. Half of the cubes (``dicom_fraction``) are written as multi-frame Ophthalmic Tomography DICOM
files (Pixel Measures in the shared functional groups or at the top level, B-scans stored shuffled with
their ``InStackPositionNumber``; synthetic identifiers in the header), the rest as NIfTI with the same
axes and spacing. Record and group ids are salted pseudonyms.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from scibind.atomic import atomic_replace
from scibind.data.splits import assign_splits
from scibind.errors import ConfigError

from scibind_medical_imaging.ophthalmic import ophthalmic_affine, write_oct_dicom
from scibind_medical_imaging.phi import pseudonym
from scibind_medical_imaging.writers import write_nifti

__all__ = ["LESIONS", "OCT_SHAPE", "OCT_SPACING_MM", "enface", "make_synthetic_oct", "oct_cube"]

OCT_SHAPE = (32, 32, 32)
"""``(lateral, depth, slow)`` voxels."""
OCT_SPACING_MM = (0.1875, 0.0625, 0.1875)
"""``(lateral, axial, between B-scans)`` mm."""
LESIONS = ("drusen", "fluid", "atrophy")
SALT = b"scibind-synthetic-oct-salt"


def _grid() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lateral x, depth z and slow y coordinates (mm) of every voxel, centred laterally."""
    axes = [(np.arange(n) - (n - 1) / 2) * s for n, s in zip(OCT_SHAPE, OCT_SPACING_MM, strict=True)]
    axes[1] = np.arange(OCT_SHAPE[1]) * OCT_SPACING_MM[1]  # depth from the top of the scan
    return np.meshgrid(*axes, indexing="ij")


def oct_cube(lesion: str, centre_mm: tuple[float, float], radius_mm: float, tilt: float) -> np.ndarray:
    """Noise-free reflectivity (0..255) of one cube ``(i lateral, j depth, k slow)``."""
    x, z, y = _grid()
    r2 = x**2 + y**2
    ilm = 0.45 + 0.25 * np.exp(-r2 / (2 * 0.6**2)) + tilt * x  # foveal pit
    rpe = 1.35 + tilt * x
    lesion_r2 = ((x - centre_mm[0]) ** 2 + (y - centre_mm[1]) ** 2) / radius_mm**2
    inside = lesion_r2 <= 1
    if lesion == "drusen":
        rpe = rpe - 0.2 * np.clip(1 - lesion_r2, 0, None)
    values = np.full(x.shape, 12.0)
    retina = (z >= ilm) & (z < rpe - 0.05)
    values = np.where(retina, 95.0 + 25.0 * np.sin((z - ilm) * 40.0), values)
    values = np.where((z >= ilm) & (z < ilm + 0.08), 190.0, values)  # nerve fibre layer
    values = np.where((z >= rpe - 0.25) & (z < rpe - 0.05), 55.0, values)  # outer nuclear layer
    rpe_band = (z >= rpe - 0.05) & (z < rpe + 0.04)
    choroid = z >= rpe + 0.04
    values = np.where(choroid, 120.0 * np.exp(-(z - rpe) / 0.5), values)
    values = np.where(rpe_band, 235.0, values)
    base_rpe = 1.35 + tilt * x
    if lesion == "drusen":
        values = np.where(inside & (z >= rpe + 0.04) & (z < base_rpe), 150.0, values)
    elif lesion == "fluid":
        cyst = lesion_r2 + ((z - (ilm + rpe) / 2) / 0.15) ** 2 <= 1
        values = np.where(cyst, 10.0, values)
    elif lesion == "atrophy":
        values = np.where(inside & rpe_band, 80.0, values)
        values = np.where(inside & choroid, 225.0, values)
    return values


def enface(cube: np.ndarray, rng: np.random.Generator, noise: float = 4.0) -> np.ndarray:
    """En-face image ``uint8 [slow, lateral]``: the mean over depth, contrast-stretched, with noise."""
    image = cube.mean(axis=1).T  # [k slow, i lateral]
    image = (image - 40.0) / 80.0 * 255.0 + rng.normal(0.0, noise, size=image.shape)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def make_synthetic_oct(
    out_dir: str | Path, *, n: int = 240, seed: int = 0, dicom_fraction: float = 0.5
) -> Path:
    """Write the synthetic OCT dataset and return its manifest (``manifest.csv``).

    Columns: ``id``, ``oct`` (a ``.dcm`` OPT file or a ``.nii.gz``), ``enface`` (PNG), ``lesion``,
    ``quadrant``, ``lesion_x_mm``, ``lesion_y_mm``, ``radius_mm``, ``format``, ``group`` and ``split``.
    Identical arguments give identical files.

    Args:
        out_dir: Output folder (created).
        n: Number of records (one eye each).
        seed: Seed of every random draw.
        dicom_fraction: Fraction of cubes written as DICOM OPT instead of NIfTI.

    Raises:
        ConfigError: An argument is out of range.
    """
    if n < 8 or not 0.0 <= dicom_fraction <= 1.0:
        raise ConfigError(f"need n >= 8 and 0 <= dicom_fraction <= 1; got {n}, {dicom_fraction}")
    from PIL import Image

    out = Path(out_dir)
    for sub in ("dicom", "nifti", "enface"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows: list[dict[str, Any]] = []
    for i in range(n):
        lesion = LESIONS[rng.integers(len(LESIONS))]
        centre = (float(rng.uniform(-2.0, 2.0)), float(rng.uniform(-2.0, 2.0)))
        radius = float(rng.uniform(0.5, 1.0))
        cube = oct_cube(lesion, centre, radius, tilt=float(rng.uniform(-0.03, 0.03)))
        speckled = cube * rng.gamma(8.0, 1 / 8.0, size=cube.shape) + rng.normal(0.0, 4.0, size=cube.shape)
        patient = f"SYNTHOCT{seed:03d}{i:05d}"
        record = pseudonym(SALT, patient, f"1.2.826.0.1.3680043.10.5678.{seed}.{i}", prefix="oct-")
        as_dicom = rng.random() < dicom_fraction
        if as_dicom:
            header = {"PatientName": f"SYNTHETIC^PATIENT^{i:05d}", "PatientID": patient}
            write_oct_dicom(
                speckled,
                OCT_SPACING_MM,
                out / "dicom" / f"{record}.dcm",
                header=header,
                seed=seed * 100003 + i,
                spacing_in=("shared-groups", "top-level")[i % 2],
                shuffle_frames=True,
            )
            path = f"dicom/{record}.dcm"
        else:
            affine = ophthalmic_affine(*OCT_SPACING_MM)
            write_nifti(np.clip(speckled, 0, 255), affine, out / "nifti" / f"{record}.nii.gz", dtype="uint8")
            path = f"nifti/{record}.nii.gz"
        image = enface(cube, np.random.default_rng([seed, i, 3]))
        Image.fromarray(image).save(out / "enface" / f"{record}.png")
        rows.append(
            {
                "id": record,
                "oct": path,
                "enface": f"enface/{record}.png",
                "lesion": lesion,
                "quadrant": f"{'superior' if centre[1] < 0 else 'inferior'} "
                f"{'temporal' if centre[0] < 0 else 'nasal'}",
                "lesion_x_mm": round(centre[0], 3),
                "lesion_y_mm": round(centre[1], 3),
                "radius_mm": round(radius, 3),
                "format": "dicom" if as_dicom else "nifti",
                "group": pseudonym(SALT, patient, prefix="pat-"),
            }
        )
    splits = assign_splits([r["id"] for r in rows], [r["group"] for r in rows], seed=seed)
    for row, split in zip(rows, splits, strict=True):
        row["split"] = split
    path_out = out / "manifest.csv"

    def write(tmp: Path) -> None:
        import pandas as pd

        pd.DataFrame(rows).to_csv(tmp, index=False)

    atomic_replace(path_out, write)
    return path_out
