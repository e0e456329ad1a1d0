"""``scibind pathology ...``: train/evaluate the ABMIL slide classifier and draw attention heatmaps.

Commands import torch and the domain libraries inside their bodies, so ``scibind --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["app", "heatmap", "mil_train"]

app = typer.Typer(
    help="Whole-slide pathology: ABMIL slide classification on cached features, attention heatmaps.",
    no_args_is_help=True,
)


@app.command("mil-train")
def mil_train(
    features_dir: Annotated[
        Path, typer.Argument(help="Folder of <slide_id>.h5 feature files (TRIDENT/CLAM layout).")
    ],
    labels: Annotated[Path, typer.Argument(help="CSV with slide_id (or id) and a label column.")],
    out: Annotated[Path, typer.Option("--out", help="Output folder.")],
    label_column: Annotated[str, typer.Option("--label-column", help="Label column of the CSV.")] = "label",
    id_column: Annotated[
        str | None, typer.Option("--id-column", help="Slide id column (default: slide_id, else id).")
    ] = None,
    folds: Annotated[int, typer.Option("--folds", help="Stratified cross-validation folds.")] = 5,
    epochs: Annotated[int, typer.Option("--epochs", help="Training epochs.")] = 40,
    hidden_dim: Annotated[int, typer.Option("--hidden-dim", help="Width of the attention network.")] = 64,
    lr: Annotated[float, typer.Option("--lr", help="AdamW learning rate.")] = 2e-3,
    seed: Annotated[int, typer.Option("--seed", help="Seed of folds and training.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the metrics as JSON.")] = False,
) -> None:
    """Cross-validate a gated-attention MIL classifier on cached features, then train it on all slides.

    Writes OUT/metrics.json (out-of-fold accuracy, balanced accuracy, macro F1), OUT/predictions.csv,
    OUT/model.safetensors and OUT/config.json (read by `scibind pathology heatmap`).
    """
    import json

    from scibind_pathology.mil import train_mil_folder

    result = train_mil_folder(
        features_dir,
        labels,
        out,
        id_column=id_column,
        label_column=label_column,
        folds=folds,
        epochs=epochs,
        hidden_dim=hidden_dim,
        lr=lr,
        seed=seed,
    )
    if as_json:
        typer.echo(json.dumps({"out": str(result.out_dir), "classes": result.classes, **result.metrics}))
        return
    m = result.metrics
    typer.echo(
        f"{int(m['n'])} slides, {len(result.classes)} classes: out-of-fold accuracy {m['accuracy']:.3f}, "
        f"balanced accuracy {m['balanced_accuracy']:.3f}, macro F1 {m['macro_f1']:.3f}"
    )
    if result.missing:
        typer.echo(f"{len(result.missing)} slide ids of {labels} have no feature file (left out)")
    typer.echo(f"model and metrics: {result.out_dir}")


@app.command("heatmap")
def heatmap(
    model_dir: Annotated[
        Path, typer.Argument(help="A `scibind train` run with a wsi_bag tower, or a mil-train output folder.")
    ],
    slide: Annotated[str, typer.Argument(help="A slide file, or a record id of the run's data manifest.")],
    out: Annotated[Path, typer.Option("--out", help="PNG to write.")],
    features: Annotated[
        Path | None,
        typer.Option("--features", help="The slide's feature file (.h5), if not found otherwise."),
    ] = None,
    view: Annotated[str | None, typer.Option("--view", help="The run's wsi_bag view, if several.")] = None,
    step: Annotated[int | None, typer.Option("--step", help="Checkpoint step (default: newest).")] = None,
    slide_column: Annotated[
        str, typer.Option("--slide-column", help="Manifest column with the slide image.")
    ] = "slide_file",
    max_side: Annotated[int, typer.Option("--max-side", help="Longer side of the PNG in pixels.")] = 1024,
    slide_mpp: Annotated[
        float | None, typer.Option("--slide-mpp", help="µm/px for slides without units.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON summary.")] = False,
) -> None:
    """Paint the model's per-tile attention for one slide over its thumbnail (red high, blue low)."""
    import json

    from scibind_pathology.slide_heatmap import slide_heatmap

    summary = slide_heatmap(
        model_dir,
        slide,
        out,
        features=features,
        view=view,
        step=step,
        slide_column=slide_column,
        max_side=max_side,
        slide_mpp=slide_mpp,
    )
    if as_json:
        typer.echo(json.dumps(summary))
        return
    best = summary["top_tiles"][0]
    typer.echo(
        f"{summary['n_tiles']} tiles of {summary['slide']}; most attended at ({best['x']}, {best['y']}), "
        f"weight {best['weight']:.3f}"
    )
    if "prediction" in summary:
        typer.echo(
            f"prediction: {summary['prediction']} ({summary['probabilities'][summary['prediction']]:.2f})"
        )
    typer.echo(f"heatmap: {summary['out']}")
