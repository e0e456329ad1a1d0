"""`scibind evaluate`: re-evaluate a trained run, on its eval split or on any manifest."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from scibind.cli.output import console, print_json

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add ``scibind evaluate`` to ``app``."""

    @app.command("evaluate")
    def evaluate_command(
        run_dir: Annotated[Path, typer.Option("--run-dir", help="A run folder written by `scibind train`.")],
        manifest: Annotated[
            Path | None,
            typer.Option(
                "--manifest",
                help="Evaluate on this manifest (its eval split when it has a split "
                "column) instead of the recipe's eval data.",
            ),
        ] = None,
        overrides: Annotated[
            list[str] | None,
            typer.Option(
                "--set",
                help="Override a recipe key, e.g. --set 'eval.tasks=[{name: core/retrieval}]' (repeatable).",
            ),
        ] = None,
        step: Annotated[int | None, typer.Option("--step", help="Checkpoint step (default: newest).")] = None,
        out: Annotated[
            Path | None,
            typer.Option(
                "--out",
                help="Folder for metrics.json and embeddings.parquet (default: RUN_DIR/eval, "
                "which also rewrites RUN_DIR/report.html).",
            ),
        ] = None,
        device: Annotated[str, typer.Option("--device", help="cpu or cuda.")] = "cpu",
        as_json: Annotated[bool, typer.Option("--json", help="Print the metrics as JSON.")] = False,
    ) -> None:
        """Embed the eval set with a trained run and run the recipe's eval.tasks; write eval/metrics.json."""
        from scibind.errors import ConfigError
        from scibind.evaluate.report import write_report
        from scibind.evaluate.runner import run_evaluation
        from scibind.train.recipe import load_recipe
        from scibind.train.run import CONFIG_FILE, build_dataset, load_run, text_encoder_fn

        run = load_run(run_dir, step)
        if overrides:
            run.recipe = load_recipe(run_dir / CONFIG_FILE, overrides)
        tasks = run.recipe.eval.tasks
        if not tasks:
            raise ConfigError(
                f"{run_dir / CONFIG_FILE} has no eval.tasks; add some, e.g. "
                "--set 'eval.tasks=[{name: core/retrieval}]'"
            )
        dataset = build_dataset(run.recipe, "eval", manifest=manifest, run_dir=run_dir)
        encode_text, text_view = text_encoder_fn(run)
        metrics = run_evaluation(
            run_dir,
            run.model.to(device),
            dataset,
            tasks,
            encode_text=encode_text,
            text_view=text_view,
            batch_size=run.recipe.eval.batch_size,
            device=device,
            out_dir=out,
        )
        report = write_report(run_dir) if out is None else None
        if as_json:
            print_json(
                {
                    "run_dir": str(run_dir),
                    "step": run.step,
                    "records": len(dataset),
                    "metrics": metrics,
                    "report": str(report) if report else None,
                }
            )
            return
        print_metrics(metrics)
        typer.echo(f"metrics: {(out or run_dir / 'eval') / 'metrics.json'}")
        if report is not None:
            typer.echo(f"report: {report}")


def print_metrics(metrics: dict[str, float]) -> None:
    """Print metrics as a table, with each ``<key>_chance`` beside its key."""
    from rich.table import Table

    table = Table("metric", "value", "chance")
    for key, value in metrics.items():
        if key.endswith("_chance"):
            continue
        chance = metrics.get(f"{key}_chance")
        table.add_row(key, f"{value:.4g}", "" if chance is None else f"{chance:.4g}")
    console().print(table)
