"""``medical_imaging/synthetic-chest-xray``: radiographs with reports, a clinical table and an outcome.

Each record is a frontal projection (8-bit PNG, 32 x 32 at 1.5 mm) of one synthetic chest phantom of
:mod:`scibind_medical_imaging.synthetic` (one nodule: lobe, size, density), with

* ``report``: a templated radiology report naming the nodule's lobe, size and density (MGCA);
* a clinical table: ``age_years``, ``spo2_pct``, ``crp_mg_l``, ``heart_rate_bpm``, ``temperature_c`` and
  ``labs``, the same values standardised as an inline JSON vector (a ``vector`` view);
* ``outcome``: a short text whose class depends on the image *and* the table jointly (MoRE-style): the
  nodule's side (visible only in the radiograph) and hypoxaemia (SpO2 < 92 %, only in the table) pick one of
  four outcomes, so neither view alone determines it.

Record and group ids are salted pseudonyms of the synthetic patient and study; ``split`` is 80/20 and
group-safe. Identical arguments give identical files.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from scibind.atomic import atomic_replace
from scibind.data.splits import assign_splits
from scibind.errors import ConfigError

from scibind_medical_imaging.phi import pseudonym
from scibind_medical_imaging.synthetic import Phantom, radiograph

__all__ = ["LAB_SCALES", "OUTCOMES", "make_synthetic_chest_xray", "outcome_class"]

OUTCOMES: dict[tuple[str, bool], str] = {
    ("right", True): "intensive care",
    ("right", False): "ward admission",
    ("left", True): "home oxygen",
    ("left", False): "discharged home",
}
"""(nodule side, hypoxaemic) -> outcome class (``outcome_rule="product"``)."""
XOR_OUTCOMES: dict[bool, str] = {True: "admitted", False: "discharged home"}
"""``outcome_rule="xor"``: admitted exactly when (right side) XOR (hypoxaemic)."""
LAB_SCALES: dict[str, tuple[float, float]] = {
    "age_years": (60.0, 15.0),
    "spo2_pct": (93.0, 4.0),
    "crp_mg_l": (50.0, 40.0),
    "heart_rate_bpm": (85.0, 15.0),
    "temperature_c": (37.5, 0.8),
}
"""Clinical column -> (centre, scale) used to standardise it into the ``labs`` vector."""
HYPOXAEMIA_SPO2_PCT = 92.0
REPORT_TEMPLATES = (
    "Frontal chest radiograph: a {size} {density} nodule in the {location} lobe.",
    "Chest X-ray shows a {size} {density} nodule, {location} lobe.",
    "{location} lobe: {size} {density} pulmonary nodule on the radiograph.",
)
OUTCOME_TEMPLATES = ("Outcome: {outcome}.", "The patient's outcome was {outcome}.")
SALT = b"scibind-synthetic-chest-xray-salt"


def outcome_class(location: str, spo2_pct: float, rule: str = "product") -> str:
    """The outcome of a record from its nodule side (``"right upper"`` -> right) and hypoxaemia (SpO2 < 92 %).

    ``"product"``: one of four outcomes per (side, hypoxaemia); ``"xor"``: ``admitted`` exactly when the
    side is right XOR the patient is hypoxaemic, so neither view alone carries *any* information about it.
    """
    side, hypoxic = location.split()[0], spo2_pct < HYPOXAEMIA_SPO2_PCT
    if rule == "xor":
        return XOR_OUTCOMES[(side == "right") != hypoxic]
    return OUTCOMES[(side, hypoxic)]


def _labs(rng: np.random.Generator) -> dict[str, float]:
    hypoxic = rng.random() < 0.5
    spo2 = rng.uniform(82.0, 90.0) if hypoxic else rng.uniform(94.0, 99.0)
    return {
        "age_years": float(np.rint(rng.uniform(30, 90))),
        "spo2_pct": round(float(spo2), 1),
        "crp_mg_l": round(float(rng.gamma(2.0, 25.0)), 1),
        "heart_rate_bpm": float(np.rint(rng.normal(85, 15))),
        "temperature_c": round(float(rng.normal(37.5, 0.8)), 1),
    }


def make_synthetic_chest_xray(
    out_dir: str | Path, *, n: int = 400, seed: int = 0, outcome_rule: str = "product"
) -> Path:
    """Write the synthetic chest radiograph dataset and return its manifest (``manifest.csv``).

    Columns: ``id``, ``xray`` (PNG path), ``report``, ``labs`` (JSON vector of the standardised clinical
    values, in :data:`LAB_SCALES` order), ``outcome`` (text), ``outcome_class``, ``location``, ``side``,
    ``size``, ``density``, ``finding``, the raw clinical columns, ``group`` and ``split``.

    Args:
        out_dir: Output folder (created).
        n: Number of records (patients; one study each).
        seed: Seed of every random draw.
        outcome_rule: ``"product"`` (four outcomes, one per side x hypoxaemia) or ``"xor"`` (two outcomes,
            see :func:`outcome_class`).

    Raises:
        ConfigError: ``n`` < 8 or an unknown ``outcome_rule``.
    """
    if n < 8 or outcome_rule not in ("product", "xor"):
        raise ConfigError(
            f"medical_imaging/synthetic-chest-xray needs n >= 8 and outcome_rule product or xor, got {n}, "
            f"{outcome_rule!r}"
        )
    from PIL import Image

    out = Path(out_dir)
    (out / "xray").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows: list[dict[str, Any]] = []
    for i in range(n):
        anatomy = Phantom.draw(rng)
        labs = _labs(rng)
        patient = f"SYNTHXR{seed:03d}{i:05d}"
        record = pseudonym(SALT, patient, f"1.2.826.0.1.3680043.10.4321.{seed}.{i}", prefix="xr-")
        image = radiograph(anatomy, np.random.default_rng([seed, i, 2]))
        Image.fromarray(image).save(out / "xray" / f"{record}.png")
        report = REPORT_TEMPLATES[rng.integers(len(REPORT_TEMPLATES))].format(
            size=anatomy.size, density=anatomy.density, location=anatomy.location
        )
        outcome = outcome_class(anatomy.location, labs["spo2_pct"], outcome_rule)
        vector = [round((labs[k] - c) / s, 4) for k, (c, s) in LAB_SCALES.items()]
        rows.append(
            {
                "id": record,
                "xray": f"xray/{record}.png",
                "report": report[0].upper() + report[1:],
                "labs": json.dumps(vector),
                "outcome": OUTCOME_TEMPLATES[rng.integers(len(OUTCOME_TEMPLATES))].format(outcome=outcome),
                "outcome_class": outcome,
                "location": anatomy.location,
                "side": anatomy.location.split()[0],
                "size": anatomy.size,
                "density": anatomy.density,
                "finding": f"{anatomy.size} {anatomy.density} {anatomy.location}",
                **labs,
                "group": pseudonym(SALT, patient, prefix="pat-"),
            }
        )
    splits = assign_splits([r["id"] for r in rows], [r["group"] for r in rows], seed=seed)
    for row, split in zip(rows, splits, strict=True):
        row["split"] = split
    path = out / "manifest.csv"

    def write(tmp: Path) -> None:
        import pandas as pd

        pd.DataFrame(rows).to_csv(tmp, index=False)

    atomic_replace(path, write)
    return path
