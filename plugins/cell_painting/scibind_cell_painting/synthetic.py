"""The ``cell_painting/synthetic-plates`` dataset: five-channel fields whose morphology follows the compound.

Each plate holds the same layout (a ``platemap.tsv`` in the JUMP-Target format, plus ``compounds.tsv``):
``n_compounds`` compounds and a DMSO control, each in ``wells_per_compound`` wells with ``sites_per_well``
fields. A field is a few cells drawn as Gaussian blobs per channel; each compound scales the size and
brightness of some channels (nuclei swell, mitochondria dim, ...). Every plate multiplies each channel by
its own gain (a plate effect). Images are written as one uint16 TIFF per channel with Harmony names
(``r03c05f01p01-ch5sk1fk1fl1.tiff``, channel map ch2=ER, ch3=AGP, ch4=Mito, ch5=DNA, ch6=RNA), and the
manifest is built by the plugin's own reading path: file discovery, channel map, plate-map join,
perturbation text. Some wells of every compound on every plate form the ``eval`` split, so plate effects
can be diagnosed on it. Every compound has a SMILES (``smiles`` in ``compounds.tsv``: the ring scaffold of
its MOA from :data:`scibind_cell_painting.cloome.SCAFFOLDS` with a side chain), which the manifest carries
as a ``molecule`` view for image <-> structure alignment (CLOOME); the DMSO control has none.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scibind.atomic import atomic_replace
from scibind.errors import ConfigError

from scibind_cell_painting.channels import CELL_PAINTING_CHANNELS
from scibind_cell_painting.cloome import SCAFFOLDS, SUBSTITUENTS
from scibind_cell_painting.fields import discover_fields, fields_frame
from scibind_cell_painting.naming import well_name
from scibind_cell_painting.platemap import annotate_wells, read_compounds, read_platemap
from scibind_cell_painting.text import perturbation_text

__all__ = ["CHANNEL_MAP", "TEXT_TEMPLATE", "compound_smiles", "make_synthetic_plates"]

CHANNEL_MAP = {2: "ER", 3: "AGP", 4: "Mito", 5: "DNA", 6: "RNA"}
"""Harmony channel tokens of the synthetic plates (as in the real sample field, without brightfield)."""

TEXT_TEMPLATE = "cells treated with {pert_iname}"
"""Perturbation text of the synthetic records (zero-shot prompts use the same words)."""

MOAS = ("tubulin inhibitor", "HDAC inhibitor", "mTOR inhibitor", "ATPase inhibitor", "CDK inhibitor")
_SIGMA_PX = {"DNA": 2.5, "ER": 5.0, "RNA": 3.0, "AGP": 6.5, "Mito": 4.5}


def _compound_effects(rng: np.random.Generator, n_compounds: int) -> np.ndarray:
    """``[n_compounds + 1, 5, 2]`` (size, brightness) log-factors per channel; row 0 is DMSO (no effect)."""
    effects = np.zeros((n_compounds + 1, len(CELL_PAINTING_CHANNELS), 2))
    for k in range(1, n_compounds + 1):
        hit = rng.choice(len(CELL_PAINTING_CHANNELS), size=2, replace=False)
        effects[k, hit] = rng.choice([-1.0, 1.0], size=(2, 2)) * rng.uniform(0.5, 0.8, size=(2, 2))
    return effects


def compound_smiles(k: int) -> str:
    """SMILES of synthetic compound ``k >= 1``: its MOA's scaffold (same order as ``MOAS``) with a side chain.

    Unique for the first ``len(MOAS) * len(SUBSTITUENTS)`` (60) compounds; later ones repeat structures.
    """
    scaffold = SCAFFOLDS[(k - 1) % len(MOAS)][0]
    return SUBSTITUENTS[((k - 1) // len(MOAS)) % len(SUBSTITUENTS)] + scaffold


def _draw_field(
    rng: np.random.Generator, effect: np.ndarray, gain: np.ndarray, size_px: int, n_cells: int
) -> np.ndarray:
    yy, xx = np.mgrid[0:size_px, 0:size_px].astype(np.float32)
    centres = rng.uniform(6, size_px - 6, size=(n_cells, 2))
    field = np.zeros((len(CELL_PAINTING_CHANNELS), size_px, size_px), dtype=np.float32)
    for c, channel in enumerate(CELL_PAINTING_CHANNELS):
        sigma = _SIGMA_PX[channel] * np.exp(effect[c, 0])
        amplitude = np.exp(effect[c, 1]) * gain[c]
        for y, x in centres:
            jitter = rng.uniform(0.85, 1.15)
            field[c] += (
                amplitude * jitter * np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / (2 * (sigma * jitter) ** 2))
            )
    field += rng.normal(0.0, 0.03, size=field.shape).astype(np.float32)
    return np.clip(500 + 8000 * field, 0, 65535).astype(np.uint16)


def make_synthetic_plates(
    out_dir: str | Path,
    *,
    n_plates: int = 3,
    n_compounds: int = 7,
    wells_per_compound: int = 6,
    sites_per_well: int = 2,
    size_px: int = 32,
    cells_per_field: int = 5,
    plate_effect: float = 0.15,
    eval_wells_per_compound: int = 2,
    seed: int = 0,
) -> Path:
    """Write synthetic Cell Painting plates (TIFFs, plate map, compound table) and return the manifest.

    Manifest columns: ``id`` (``<plate>_<well>_s<site>``), ``cells.{DNA,ER,RNA,AGP,Mito}`` (TIFF paths),
    ``text`` (``"cells treated with <compound>"``), ``molecule`` (the compound's SMILES, modality
    ``molecule_graph`` for the molecules plugin's ``molecules/molecule`` reader; empty for DMSO, i.e. no
    molecule view), ``perturbation``, ``moa``, ``plate``, ``well``,
    ``well_id`` (``<plate>_<well>``, for well-level aggregation), ``group`` (= ``well_id``) and ``split``
    (``eval_wells_per_compound`` wells of each compound, on every plate, are ``eval``). Identical arguments
    give identical files.

    Args:
        out_dir: Output folder (``images/<plate>/``, ``platemap.tsv``, ``compounds.tsv``, ``manifest.csv``).
        n_plates: Plates.
        n_compounds: Compounds besides the DMSO control.
        wells_per_compound: Wells per compound (and of DMSO) on each plate.
        sites_per_well: Fields per well.
        size_px: Field side in pixels.
        cells_per_field: Cells drawn per field.
        plate_effect: Standard deviation of each plate's per-channel log-gain.
        eval_wells_per_compound: Wells per compound (the same on every plate) in the ``eval`` split.
        seed: Seed of every random draw.

    Raises:
        ConfigError: Arguments out of range, or the layout does not fit a 384-well plate.
    """
    import tifffile

    n_wells = (n_compounds + 1) * wells_per_compound
    if n_plates < 1 or min(n_compounds, wells_per_compound, sites_per_well, cells_per_field) < 1:
        raise ConfigError(
            "n_plates, n_compounds, wells_per_compound, sites_per_well, cells_per_field must be >= 1"
        )
    if not 1 <= eval_wells_per_compound < wells_per_compound:
        raise ConfigError("need 1 <= eval_wells_per_compound < wells_per_compound")
    if n_wells > 384 or size_px < 16:
        raise ConfigError(f"{n_wells} wells do not fit a 384-well plate, or size_px < 16")
    out = Path(out_dir)
    rng = np.random.default_rng(seed)
    effects = _compound_effects(rng, n_compounds)
    names = ["DMSO"] + [f"cpd-{k:02d}" for k in range(1, n_compounds + 1)]
    ids = ["DMSO"] + [f"BRD-S{k:07d}" for k in range(1, n_compounds + 1)]
    wells = [well_name(1 + i // 24, 1 + i % 24) for i in rng.permutation(384)[:n_wells]]
    layout = {w: i // wells_per_compound for i, w in enumerate(wells)}
    eval_rank = {w: i % wells_per_compound for i, w in enumerate(wells)}
    out.mkdir(parents=True, exist_ok=True)
    (out / "platemap.tsv").write_text(
        "well_position\tbroad_sample\n" + "".join(f"{w}\t{ids[k]}\n" for w, k in sorted(layout.items())),
        encoding="utf-8",
    )
    (out / "compounds.tsv").write_text(
        "broad_sample\tpert_iname\tmoa\tpert_type\tsmiles\n"
        + "".join(
            f"{ids[k]}\t{names[k]}\t{'control' if k == 0 else MOAS[(k - 1) % len(MOAS)]}\t"
            f"{'control' if k == 0 else 'trt'}\t{'' if k == 0 else compound_smiles(k)}\n"
            for k in range(n_compounds + 1)
        ),
        encoding="utf-8",
    )
    token = {v: k for k, v in CHANNEL_MAP.items()}
    plates = [f"SYN{p + 1:05d}" for p in range(n_plates)]
    for plate in plates:
        gain = np.exp(rng.normal(0.0, plate_effect, size=len(CELL_PAINTING_CHANNELS)))
        folder = out / "images" / plate
        folder.mkdir(parents=True, exist_ok=True)
        for well, k in sorted(layout.items()):
            row, col = ord(well[0]) - ord("A") + 1, int(well[1:])
            for site in range(1, sites_per_well + 1):
                field = _draw_field(rng, effects[k], gain, size_px, cells_per_field)
                for c, channel in enumerate(CELL_PAINTING_CHANNELS):
                    name = f"r{row:02d}c{col:02d}f{site:02d}p01-ch{token[channel]}sk1fk1fl1.tiff"
                    tifffile.imwrite(folder / name, field[c], metadata=None)
    frame = fields_frame(discover_fields(out / "images", CHANNEL_MAP), view="cells", relative_to=out)
    frame = annotate_wells(
        frame,
        read_platemap(out / "platemap.tsv"),
        read_compounds(out / "compounds.tsv"),
        platemap_name=str(out / "platemap.tsv"),
    )
    frame["text"] = [perturbation_text(r, TEXT_TEMPLATE) for r in frame.to_dict("records")]
    frame["perturbation"] = frame["pert_iname"]
    frame["molecule"] = [None if k == 0 else compound_smiles(k) for k in frame["broad_sample"].map(ids.index)]
    frame["well_id"] = frame["plate"] + "_" + frame["well"]
    frame["group"] = frame["well_id"]
    frame["split"] = [
        "eval" if eval_rank[w] >= wells_per_compound - eval_wells_per_compound else "train"
        for w in frame["well"]
    ]
    columns = ["id", *[f"cells.{c}" for c in CELL_PAINTING_CHANNELS], "text", "molecule"]
    columns += ["perturbation", "moa"]
    columns += ["plate", "well", "well_id", "group", "split"]
    manifest = out / "manifest.csv"
    atomic_replace(manifest, lambda tmp: frame[columns].to_csv(tmp, index=False))
    return manifest
