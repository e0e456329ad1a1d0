"""Cell Painting: MOA and replicate retrieval mAP of learned profile embeddings against raw features.

On the LINCS plate SQ00015054 (shared sample data), wells are split by compound (held-out compounds in
``eval``). The baseline ranks eval wells by cosine similarity of their 454 normalised, feature-selected
CellProfiler features; scibind trains ``cell_painting/profiles-text-clip`` (profile MLP <-> perturbation
text, multi-positive CLIP on MOA) on the train compounds and ranks the same eval wells in the joint space.
Both use the copairs mAP protocol of ``cell_painting/map``.

CLOOME part (``--part cloome``, needs scibind-molecules): ``cell_painting/cloome-profiles`` on
``cell_painting/synthetic-cloome`` (per-well profiles whose morphology follows scaffold + side chain; whole
compounds held out) with InfoLOOB + Hopfield, InfoLOOB alone and CLIP; molecule <-> profile mAP of the
held-out compounds against chance, and replicate mAP of raw vs learned profiles.

Images part (``--part images``): on the same synthetic five-channel plates (48 px fields, spaced cells),
fields vs single-cell crops (``cell_painting/synthetic-cells-clip``: nuclei found on DNA, one record per
cell) as the image unit, scored per record and per well (mean embedding of a well's fields or cells); and
``cell_painting/cloome-images`` (needs scibind-molecules): molecule <-> image mAP on compounds held out of
training, against chance.

    python benchmarks/cell_painting.py [--part lincs|cloome|images|all] [--steps 300] [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

LINCS = "cellpainting/profiles/SQ00015054_normalized_feature_select.csv.gz"


def main() -> None:
    """Print the mAP table."""
    from scibind.data.manifest import read_manifest
    from scibind.train.recipe import load_recipe
    from scibind.train.trainer import train
    from scibind_cell_painting.average_precision import mean_average_precision
    from scibind_cell_painting.profiles import profiles_manifest

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--part", choices=("lincs", "cloome", "images", "all"), default="all")
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    args = parser.parse_args()
    if args.part in ("images", "all"):
        images()
    if args.part in ("cloome", "all"):
        cloome()
    if args.part in ("cloome", "images"):
        return
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "lincs"
        manifest = profiles_manifest(args.data / LINCS, out, drop_controls=True, eval_fraction=0.3)
        frame = read_manifest(manifest).select("eval").frame
        raw = np.stack(frame["profile"].to_numpy())
        rows = []
        for label in ("moa", "compound"):
            result = mean_average_precision(raw, frame[label].tolist(), null_size=1000)
            rows.append((f"{label} retrieval, raw features (cosine)", result))
        start = time.perf_counter()
        recipe = load_recipe(
            "cell_painting/profiles-text-clip", [f"data.train={manifest}", f"train.max_steps={args.steps}"]
        )
        metrics = train(recipe, Path(tmp) / "run").metrics
        seconds = time.perf_counter() - start
    print(f"LINCS SQ00015054, {len(frame)} eval wells of held-out compounds; training {seconds:.0f} s\n")
    print("| measure | mAP | chance | fraction retrieved |\n|---|---|---|---|")
    for name, result in rows:
        print(f"| {name} | {result.mean:.3f} | {result.chance:.3f} | {result.fraction_retrieved:.2f} |")
    for label in ("moa", "compound"):
        key = f"map/profile/{label}"
        print(
            f"| {label} retrieval, scibind profile embedding | {metrics[key + '/mAP']:.3f} | "
            f"{metrics[key + '/mAP_chance']:.3f} | {metrics[key + '/fraction_retrieved']:.2f} |"
        )
    key = "map/profile->text/moa"
    print(
        f"| profile -> MOA text | {metrics[key + '/mAP']:.3f} | {metrics[key + '/mAP_chance']:.3f} | "
        f"{metrics[key + '/fraction_retrieved']:.2f} |"
    )


CLOOME_VARIANTS = (
    ("InfoLOOB + Hopfield (CLOOME)", []),
    ("InfoLOOB + Hopfield, CLOOME's 1/tau = 14.3", ["objective.kwargs.temperature=0.0699300699"]),
    ("InfoLOOB, no Hopfield", ["objective.kwargs.hopfield_beta=null"]),
    ("CLIP (InfoNCE)", ["objective.name=core/clip", "objective.kwargs={positive_target: compound}"]),
)


def cloome(steps: int = 200) -> None:
    """Print molecule <-> profile mAP on held-out synthetic compounds for three objectives."""
    from scibind.data.manifest import read_manifest
    from scibind.train.recipe import load_recipe
    from scibind.train.trainer import train
    from scibind_cell_painting.average_precision import mean_average_precision

    keys = (
        "molecule->profile/compound",
        "profile->molecule/compound",
        "molecule->profile/moa",
        "profile/compound",
    )
    print("| objective | " + " | ".join(keys) + " | seconds |\n|---|---|---|---|---|---|")
    chance = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, overrides) in enumerate(CLOOME_VARIANTS):
            start = time.perf_counter()
            recipe = load_recipe("cell_painting/cloome-profiles", [f"train.max_steps={steps}", *overrides])
            metrics = train(recipe, Path(tmp) / f"run{i}").metrics
            seconds = time.perf_counter() - start
            chance = {k: metrics[f"map/{k}/mAP_chance"] for k in keys}
            cells = " | ".join(f"{metrics[f'map/{k}/mAP']:.3f}" for k in keys)
            print(f"| {name} | {cells} | {seconds:.0f} |")
        frame = read_manifest(Path(tmp) / "run0" / "data" / "manifest.parquet").select("eval").frame
        raw = mean_average_precision(np.stack(frame["profile"].to_numpy()), frame["compound"].tolist())
    print("| chance | " + " | ".join(f"{chance[k]:.3f}" for k in keys) + " | |")
    print(f"| raw profile features (cosine) | | | | {raw.mean:.3f} | |")
    print(f"\n{len(frame)} eval wells of {frame['compound'].nunique()} held-out compounds\n")


SPACED_PLATES = {"size_px": 48, "crop_px": 20, "cells_per_field": 5, "min_cell_distance_px": 11}
"""Dataset options shared by the field and cell runs of ``images``, so both see the same TIFF files."""


def images() -> None:
    """Print fields vs single cells as the image unit, and CLOOME image <-> molecule on held-out compounds."""
    import importlib.util

    import pandas as pd
    from scibind.train.recipe import load_recipe
    from scibind.train.trainer import train

    plates = [f"data.dataset_kwargs.{k}={v}" for k, v in SPACED_PLATES.items()]
    units = (
        ("fields (site tiles, 48 px)", "cell_painting/synthetic-plates-clip", plates),
        ("single cells (20 px crops)", "cell_painting/synthetic-cells-clip", []),
    )
    keys = ("cells/perturbation", "cells@well_id/perturbation")
    print("| image unit | train records | mAP per record | mAP per well | zero-shot accuracy | seconds |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, recipe_name, overrides) in enumerate(units):
            start = time.perf_counter()
            run = Path(tmp) / f"unit{i}"
            metrics = train(load_recipe(recipe_name, overrides), run).metrics
            seconds = time.perf_counter() - start
            n_train = int((pd.read_csv(run / "data" / "manifest.csv")["split"] == "train").sum())
            cells = " | ".join(
                f"{metrics[f'map/{k}/mAP']:.3f} ({metrics[f'map/{k}/mAP_chance']:.3f})" for k in keys
            )
            zero_shot = metrics["zero_shot/cells/accuracy"]
            print(f"| {name} | {n_train} | {cells} | {zero_shot:.3f} (0.125) | {seconds:.0f} |")
        if importlib.util.find_spec("scibind_molecules") is None:
            print("\nscibind-molecules is not installed: skipping cell_painting/cloome-images")
            return
        start = time.perf_counter()
        metrics = train(load_recipe("cell_painting/cloome-images", []), Path(tmp) / "cloome").metrics
        seconds = time.perf_counter() - start
    keys = ("molecule->cells/perturbation", "cells->molecule/perturbation", "molecule->cells/moa")
    print(f"\ncell_painting/cloome-images, 6 held-out compounds ({seconds:.0f} s); chance in brackets\n")
    print("| " + " | ".join(keys) + " |\n|---|---|---|")
    print(
        "| "
        + " | ".join(f"{metrics[f'map/{k}/mAP']:.3f} ({metrics[f'map/{k}/mAP_chance']:.3f})" for k in keys)
        + " |"
    )


if __name__ == "__main__":
    main()
