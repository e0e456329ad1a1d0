"""The ``cell_painting/synthetic-cloome`` dataset: per-well profiles whose morphology follows the structure.

CLOOME aligns Cell Painting with molecular structures and is judged on compounds never seen in training.
That only works when structure predicts morphology, so the synthetic compounds are built from parts:
each of ``n_scaffolds`` ring scaffolds is one mechanism of action (``moa``) and adds one random profile
direction; each of ``n_substituents`` side chains adds a second, smaller direction, the same on every
scaffold. A compound is a scaffold with a side chain (valid SMILES, e.g. ``OCCc1ccncc1``); its wells are
its profile plus noise and a per-plate offset. Whole compounds are held out (``group`` = compound), so a
held-out compound is a new scaffold x side-chain combination whose parts were each seen in training, as
a new analogue in a known series is. The files are pycytominer-style (``profiles.csv`` with
``Metadata_*`` columns, including ``Metadata_smiles``) and the manifest is written by
:func:`scibind_cell_painting.profiles.profiles_manifest` with ``smiles="Metadata_smiles"``, the path real
JUMP profiles take.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scibind.atomic import atomic_replace
from scibind.errors import ConfigError

from scibind_cell_painting.naming import well_name
from scibind_cell_painting.profiles import profiles_manifest

__all__ = ["SCAFFOLDS", "SUBSTITUENTS", "make_synthetic_cloome"]

SCAFFOLDS = (
    ("c1ccccc1", "tubulin inhibitor"),
    ("c1ccncc1", "HDAC inhibitor"),
    ("C1CCNCC1", "mTOR inhibitor"),
    ("c1ccc2ccccc2c1", "ATPase inhibitor"),
    ("C1COCCN1", "CDK inhibitor"),
    ("c1ccsc1", "EGFR inhibitor"),
    ("C1CCCCC1", "HSP inhibitor"),
    ("c1cnc2ccccc2c1", "PARP inhibitor"),
)
"""Ring scaffold (SMILES written so a side chain can prefix it) and the MOA it stands for."""

SUBSTITUENTS = ("C", "CC", "CCC", "CCCC", "OC", "OCC", "NC", "FC", "ClCC", "CC(C)", "C(=O)", "OC(=O)")
"""Side chains, written before the scaffold (``"OCC" + "c1ccccc1"`` = 2-phenylethanol)."""


def make_synthetic_cloome(
    out_dir: str | Path,
    *,
    n_scaffolds: int = 6,
    n_substituents: int = 10,
    wells_per_compound: int = 4,
    n_plates: int = 2,
    n_features: int = 64,
    scaffold_effect: float = 2.0,
    substituent_effect: float = 1.5,
    noise: float = 0.5,
    plate_effect: float = 0.3,
    eval_fraction: float = 0.25,
    seed: int = 0,
) -> Path:
    """Write synthetic per-well profiles with SMILES and return the manifest.

    Manifest columns (from :func:`~scibind_cell_painting.profiles.profiles_manifest`): ``id``
    (``<plate>_<well>``), ``profile`` (``float32[n_features]``), ``molecule`` (SMILES), ``text``
    (``"<compound>, <moa>"``), ``compound``, ``moa``, ``plate``, ``well``, ``group`` (= compound) and
    ``split`` (about ``eval_fraction`` of the compounds are ``eval``). Same arguments, same bytes.

    Args:
        out_dir: Output folder (``profiles.csv``, ``manifest.parquet``).
        n_scaffolds: Scaffolds (= MOAs), at most ``len(SCAFFOLDS)``.
        n_substituents: Side chains, at most ``len(SUBSTITUENTS)``.
        wells_per_compound: Wells of each compound on each plate.
        n_plates: Plates.
        n_features: Profile features.
        scaffold_effect: Norm of each scaffold's profile direction.
        substituent_effect: Norm of each side chain's profile direction.
        noise: Per-feature standard deviation of well noise.
        plate_effect: Per-feature standard deviation of each plate's offset.
        eval_fraction: Fraction of compounds held out.
        seed: Seed of every random draw.

    Raises:
        ConfigError: Arguments out of range, or the wells do not fit a 384-well plate.
    """
    if not 1 <= n_scaffolds <= len(SCAFFOLDS) or not 1 <= n_substituents <= len(SUBSTITUENTS):
        raise ConfigError(
            f"need 1 <= n_scaffolds <= {len(SCAFFOLDS)} and 1 <= n_substituents <= {len(SUBSTITUENTS)}"
        )
    n_compounds = n_scaffolds * n_substituents
    if min(wells_per_compound, n_plates, n_features) < 1 or n_compounds * wells_per_compound > 384:
        raise ConfigError(f"{n_compounds} compounds x {wells_per_compound} wells do not fit a 384-well plate")
    rng = np.random.default_rng(seed)

    def directions(n: int, norm: float) -> np.ndarray:
        d = rng.normal(size=(n, n_features))
        return norm * d / np.linalg.norm(d, axis=1, keepdims=True)

    scaffold_dirs = directions(n_scaffolds, scaffold_effect)
    substituent_dirs = directions(n_substituents, substituent_effect)
    compounds = [(s, r) for s in range(n_scaffolds) for r in range(n_substituents)]
    wells = [
        well_name(1 + i // 24, 1 + i % 24)
        for i in rng.permutation(384)[: len(compounds) * wells_per_compound]
    ]
    header = ["Metadata_Plate", "Metadata_Well", "Metadata_broad_sample", "Metadata_moa", "Metadata_smiles"]
    lines = [",".join(header + [f"f{k:03d}" for k in range(n_features)])]
    for p in range(n_plates):
        plate = f"SYNCL{p + 1:03d}"
        offset = rng.normal(0.0, plate_effect, size=n_features)
        for i, (s, r) in enumerate(compounds):
            centre = scaffold_dirs[s] + substituent_dirs[r] + offset
            for w in range(wells_per_compound):
                values = centre + rng.normal(0.0, noise, size=n_features)
                smiles = SUBSTITUENTS[r] + SCAFFOLDS[s][0]
                meta = [
                    plate,
                    wells[i * wells_per_compound + w],
                    f"SYN-{s:02d}-{r:02d}",
                    SCAFFOLDS[s][1],
                    smiles,
                ]
                lines.append(",".join(meta + [f"{v:.5f}" for v in values]))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table = out / "profiles.csv"
    atomic_replace(table, lambda tmp: Path(tmp).write_text("\n".join(lines) + "\n", encoding="utf-8"))
    return profiles_manifest(
        table,
        out,
        template="{pert}[, {moa}]",
        labels={
            "compound": "Metadata_broad_sample",
            "moa": "Metadata_moa",
            "plate": "Metadata_Plate",
            "well": "Metadata_Well",
        },
        group="Metadata_broad_sample",
        eval_fraction=eval_fraction,
        seed=seed,
        smiles="Metadata_smiles",
    )
