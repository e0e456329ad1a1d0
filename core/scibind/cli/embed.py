"""`scibind embed`: write an embedding store of a manifest with a trained run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from scibind.cli.output import print_json

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add ``scibind embed`` to ``app``."""

    @app.command("embed")
    def embed_command(
        run_dir: Annotated[Path, typer.Option("--run-dir", help="A run folder written by `scibind train`.")],
        manifest: Annotated[
            Path | None,
            typer.Option("--manifest", help="Embed this manifest (default: the recipe's eval data)."),
        ] = None,
        out: Annotated[
            Path | None,
            typer.Option(
                "--out", help="Store path: *.parquet (default RUN_DIR/embeddings.parquet) or *.zarr."
            ),
        ] = None,
        views: Annotated[
            str | None, typer.Option("--views", help="Comma-separated views to embed (default: all).")
        ] = None,
        split: Annotated[
            str, typer.Option("--split", help="Which split of the manifest: eval or train.")
        ] = "eval",
        batch_size: Annotated[
            int | None, typer.Option("--batch-size", help="Records per batch (default: eval.batch_size).")
        ] = None,
        step: Annotated[int | None, typer.Option("--step", help="Checkpoint step (default: newest).")] = None,
        device: Annotated[str, typer.Option("--device", help="cpu or cuda.")] = "cpu",
        as_json: Annotated[bool, typer.Option("--json", help="Print a JSON summary.")] = False,
    ) -> None:
        """Embed every record with each view's tower and write ids, view, vectors and labels to a store."""
        from scibind.evaluate.runner import embed_dataset
        from scibind.train.run import build_dataset, load_run

        if split not in ("eval", "train"):
            raise typer.BadParameter(f"--split must be eval or train, got {split!r}")
        run = load_run(run_dir, step)
        dataset = build_dataset(run.recipe, split, manifest=manifest, run_dir=run_dir)
        wanted = [v.strip() for v in views.split(",") if v.strip()] if views else None
        embedded = embed_dataset(
            run.model.to(device),
            dataset,
            batch_size=batch_size or run.recipe.eval.batch_size,
            device=device,
            views=wanted,
        )
        store = embedded.to_store()
        path = store.save(out or run_dir / "embeddings.parquet")
        counts = {view: len(store[view].ids) for view in store.views}
        if as_json:
            print_json({"store": str(path), "step": run.step, "records": len(embedded.ids), "views": counts})
            return
        for view, n in counts.items():
            typer.echo(f"{view}: {n} vectors")
        typer.echo(f"store: {path}")
