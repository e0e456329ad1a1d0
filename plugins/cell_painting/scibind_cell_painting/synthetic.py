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

Two options serve other recipes. ``effects="structure"`` makes morphology follow the structure: the
compound's scaffold (its MOA) and its side chain each change their own channels, so
``heldout_compounds`` (whole compounds in ``eval``, none of their wells in ``train``) are new combinations
of parts seen in training, as CLOOME needs. ``unit="cell"`` makes each record one cell: nuclei are found on
the DNA channel of every field (:func:`scibind_cell_painting.single_cells.single_cell_frame`) and the
``cell_painting/cell`` reader crops them; ``min_cell_distance_px`` keeps drawn cells apart so that they can
be found.
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

__all__ = ["CHANNEL_MAP", "EFFECTS", "TEXT_TEMPLATE", "UNITS", "compound_smiles", "make_synthetic_plates"]

CHANNEL_MAP = {2: "ER", 3: "AGP", 4: "Mito", 5: "DNA", 6: "RNA"}
"""Harmony channel tokens of the synthetic plates (as in the real sample field, without brightfield)."""

TEXT_TEMPLATE = "cells treated with {pert_iname}"
"""Perturbation text of the synthetic records (zero-shot prompts use the same words)."""

MOAS = ("tubulin inhibitor", "HDAC inhibitor", "mTOR inhibitor", "ATPase inhibitor", "CDK inhibitor")
_SIGMA_PX = {"DNA": 2.5, "ER": 5.0, "RNA": 3.0, "AGP": 6.5, "Mito": 4.5}
EFFECTS = ("random", "structure")
"""``random``: each compound changes two random channels; ``structure``: scaffold + side chain (CLOOME)."""
UNITS = ("field", "cell")
"""Record unit of the manifest: a field (site) or one cell of it."""


def _compound_effects(rng: np.random.Generator, n_compounds: int) -> np.ndarray:
    """``[n_compounds + 1, 5, 2]`` (size, brightness) log-factors per channel; row 0 is DMSO (no effect)."""
    effects = np.zeros((n_compounds + 1, len(CELL_PAINTING_CHANNELS), 2))
    for k in range(1, n_compounds + 1):
        hit = rng.choice(len(CELL_PAINTING_CHANNELS), size=2, replace=False)
        effects[k, hit] = rng.choice([-1.0, 1.0], size=(2, 2)) * rng.uniform(0.5, 0.8, size=(2, 2))
    return effects


def _structure_effects(rng: np.random.Generator, n_compounds: int) -> np.ndarray:
    """As :func:`_compound_effects`, but scaffold (MOA) and side chain each add their own channel changes."""
    n_channels = len(CELL_PAINTING_CHANNELS)
    n_chains = -(-n_compounds // len(MOAS))
    parts = []
    for n_parts, n_hit, low, high in ((len(MOAS), 2, 0.5, 0.8), (n_chains, 1, 0.4, 0.6)):
        part = np.zeros((n_parts, n_channels, 2))
        for p in range(n_parts):
            hit = rng.choice(n_channels, size=n_hit, replace=False)
            part[p, hit] = rng.choice([-1.0, 1.0], size=(n_hit, 2)) * rng.uniform(low, high, size=(n_hit, 2))
        parts.append(part)
    effects = np.zeros((n_compounds + 1, n_channels, 2))
    for k in range(1, n_compounds + 1):
        effects[k] = parts[0][(k - 1) % len(MOAS)] + parts[1][(k - 1) // len(MOAS)]
    return effects


def _heldout(n_compounds: int, n_heldout: int) -> set[int]:
    """Compounds (1-based) to hold out, one diagonal of the scaffold x side chain grid after another.

    Compound ``k`` is scaffold ``(k - 1) % 5`` with side chain ``(k - 1) // 5``; walking the diagonals spreads
    held-out compounds over scaffolds and side chains, so each keeps most of its compounds in training.
    """
    n = len(MOAS)
    order = sorted(range(1, n_compounds + 1), key=lambda k: (((k - 1) % n - (k - 1) // n) % n, k))
    return set(order[:n_heldout])


def _centres(
    rng: np.random.Generator, n_cells: int, size_px: int, min_distance_px: float, margin_px: float
) -> np.ndarray:
    centres = rng.uniform(margin_px, size_px - margin_px, size=(n_cells, 2))
    for _ in range(200):
        if min_distance_px <= 0 or n_cells < 2:
            break
        distance = np.linalg.norm(centres[:, None] - centres[None], axis=2) + np.eye(n_cells) * 1e9
        close = np.flatnonzero(distance.min(axis=1) < min_distance_px)
        if len(close) == 0:
            break
        centres[close[-1]] = rng.uniform(margin_px, size_px - margin_px, size=2)
    return centres


def _split(k: int, rank: int, n_train: int, heldout: set[int]) -> str:
    """``eval`` for held-out compounds; with some, every other compound trains (DMSO keeps eval wells)."""
    if k in heldout:
        return "eval"
    if heldout and k != 0:
        return "train"
    return "eval" if rank >= n_train else "train"


def compound_smiles(k: int) -> str:
    """SMILES of synthetic compound ``k >= 1``: its MOA's scaffold (same order as ``MOAS``) with a side chain.

    Unique for the first ``len(MOAS) * len(SUBSTITUENTS)`` (60) compounds; later ones repeat structures.
    """
    scaffold = SCAFFOLDS[(k - 1) % len(MOAS)][0]
    return SUBSTITUENTS[((k - 1) // len(MOAS)) % len(SUBSTITUENTS)] + scaffold


def _draw_field(
    rng: np.random.Generator,
    effect: np.ndarray,
    gain: np.ndarray,
    size_px: int,
    n_cells: int,
    min_distance_px: float = 0.0,
    margin_px: float = 6.0,
) -> np.ndarray:
    yy, xx = np.mgrid[0:size_px, 0:size_px].astype(np.float32)
    centres = _centres(rng, n_cells, size_px, min_distance_px, margin_px)
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
    effects: str = "random",
    heldout_compounds: int = 0,
    unit: str = "field",
    crop_px: int = 24,
    min_cell_distance_px: float = 0.0,
    seed: int = 0,
) -> Path:
    """Write synthetic Cell Painting plates (TIFFs, plate map, compound table) and return the manifest.

    Manifest columns: ``id`` (``<plate>_<well>_s<site>``), ``cells.{DNA,ER,RNA,AGP,Mito}`` (TIFF paths),
    ``text`` (``"cells treated with <compound>"``), ``molecule`` (the compound's SMILES, modality
    ``molecule_graph`` for the molecules plugin's ``molecules/molecule`` reader; empty for DMSO, i.e. no
    molecule view), ``perturbation``, ``moa``, ``plate``, ``well``,
    ``well_id`` (``<plate>_<well>``, for well-level aggregation), ``group`` (= ``well_id``) and ``split``
    (``eval_wells_per_compound`` wells of each compound, on every plate, are ``eval``; with held-out
    compounds, ``eval`` is their every well plus those DMSO wells, and the other compounds only train), and
    ``heldout`` (``yes`` for held-out compounds). With ``unit="cell"`` each row is one cell: ``id`` gains
    ``_c<k>``, ``field_id`` names its field and ``cells.y_px`` / ``cells.x_px`` its nucleus centre (read the
    view with ``cell_painting/cell``). Identical arguments give identical files.

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
        effects: One of :data:`EFFECTS`: ``random`` channel changes per compound, or ``structure`` (scaffold
            + side chain, so unseen compounds are predictable from their parts).
        heldout_compounds: Compounds whose every well is ``eval`` (spread over scaffolds and side chains).
        unit: One of :data:`UNITS`: a record per field, or per cell found on the DNA channel.
        crop_px: With ``unit="cell"`` or ``min_cell_distance_px > 0``, cells are drawn at least
            ``crop_px / 2`` from the border (so both units of the same arguments hold the same images); with
            ``unit="cell"``, detected cells whose ``crop_px`` crop would leave the field are dropped.
        min_cell_distance_px: Smallest distance between drawn cell centres (0: no constraint).
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
    if effects not in EFFECTS or unit not in UNITS:
        raise ConfigError(
            f"effects must be one of {EFFECTS} and unit one of {UNITS}, got {effects!r}, {unit!r}"
        )
    if not 0 <= heldout_compounds < n_compounds:
        raise ConfigError(
            f"need 0 <= heldout_compounds < n_compounds ({n_compounds}), got {heldout_compounds}"
        )
    out = Path(out_dir)
    rng = np.random.default_rng(seed)
    draw = _compound_effects if effects == "random" else _structure_effects
    compound_effects = draw(rng, n_compounds)
    heldout = _heldout(n_compounds, heldout_compounds)
    # Cells are drawn far enough from the border for their crop to fit (cell unit, or spaced cells: then
    # fields and cells of the same arguments hold the same images), else 6 px in.
    spaced = unit == "cell" or min_cell_distance_px > 0
    margin_px = max(6.0, crop_px / 2) if spaced else 6.0
    if 2 * margin_px >= size_px:
        raise ConfigError(f"crop_px ({crop_px}) must be smaller than size_px ({size_px})")
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
                field = _draw_field(
                    rng, compound_effects[k], gain, size_px, cells_per_field, min_cell_distance_px, margin_px
                )
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
    frame["heldout"] = ["yes" if layout[w] in heldout else "no" for w in frame["well"]]
    frame["split"] = [
        _split(layout[w], eval_rank[w], wells_per_compound - eval_wells_per_compound, heldout)
        for w in frame["well"]
    ]
    columns = ["id", *[f"cells.{c}" for c in CELL_PAINTING_CHANNELS], "text", "molecule"]
    columns += ["perturbation", "moa"]
    columns += ["plate", "well", "well_id", "group", "heldout", "split"]
    frame = frame[columns]
    if unit == "cell":
        from scibind_cell_painting.single_cells import single_cell_frame

        frame = single_cell_frame(
            frame, "cells", base_dir=out, crop_px=crop_px, min_area_px=8, smooth_sigma_px=1.0
        )
        columns = ["id", "field_id", *columns[1:6], "cells.y_px", "cells.x_px", *columns[6:]]
    manifest = out / "manifest.csv"
    atomic_replace(manifest, lambda tmp: frame[columns].to_csv(tmp, index=False))
    return manifest
