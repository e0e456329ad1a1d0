"""`scibind train`: train a recipe into a run folder (also under ``torchrun -m scibind train``)."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from scibind.cli.output import console, echo_metrics, print_json

if TYPE_CHECKING:
    from scibind.train.trainer import StepInfo, TrainResult

__all__ = ["register"]

# Metrics shown in the end-of-run summary (all of them are in eval/metrics.json).
SUMMARY_SUFFIXES = ("/R@1", "/R@10", "/MRR", "/accuracy", "/gap")


def register(app: typer.Typer) -> None:
    """Add ``scibind train`` to ``app``."""

    @app.command("train")
    def train_command(
        recipe: Annotated[
            str, typer.Argument(help="A registered recipe name (core/synthetic-clip) or a YAML file.")
        ],
        run_dir: Annotated[
            Path, typer.Option("--run-dir", help="Output folder: config, metrics, checkpoints, report.")
        ],
        overrides: Annotated[
            list[str] | None,
            typer.Option("--set", help="Override a recipe key, e.g. --set train.max_steps=100 (repeatable)."),
        ] = None,
        resume: Annotated[
            bool, typer.Option("--resume", help="Continue from the newest complete checkpoint in --run-dir.")
        ] = False,
        as_json: Annotated[
            bool, typer.Option("--json", help="Print the result as JSON (no progress display).")
        ] = False,
    ) -> None:
        """Train RECIPE into --run-dir, then evaluate it and write report.html.

        Under ``torchrun --nproc-per-node N -m scibind train ...`` every process trains on its slice of each
        global batch (train.batch_size per process); rank 0 writes the files and prints.
        """
        from scibind.train.recipe import load_recipe
        from scibind.train.trainer import train

        main = int(os.environ.get("RANK", "0")) == 0
        loaded = load_recipe(recipe, overrides or ())
        if main and not as_json:
            _log_to_stderr()
        interactive = main and not as_json and sys.stdout.isatty()
        if interactive:
            result = _train_with_progress(
                loaded.name, lambda on_step: train(loaded, run_dir, resume=resume, on_step=on_step)
            )
        else:
            printer = _plain_printer(loaded.train.log_every) if main and not as_json else None
            result = train(loaded, run_dir, resume=resume, on_step=printer)
        if main:
            _print_result(result, as_json=as_json)


def _log_to_stderr() -> None:
    logger = logging.getLogger("scibind.train")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)


def _plain_printer(every: int) -> Any:
    def on_step(info: StepInfo) -> None:
        if info.step % every == 0 or info.step == info.max_steps:
            typer.echo(
                f"step {info.step}/{info.max_steps}  loss {info.loss:.4f}  lr {info.lr:.3g}  "
                f"{info.seconds:.1f}s"
            )

    return on_step


def _train_with_progress(name: str, run: Any) -> TrainResult:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console()) as progress:
        task = progress.add_task(f"train {name}", total=None, loss="-")

        def on_step(info: StepInfo) -> None:
            progress.update(task, total=info.max_steps, completed=info.step, loss=f"{info.loss:.4f}")

        return run(on_step)


def _print_result(result: TrainResult, *, as_json: bool) -> None:
    if as_json:
        print_json(
            {
                "run_dir": str(result.run_dir),
                "step": result.step,
                "checkpoint": str(result.checkpoint),
                "report": str(result.report_path) if result.report_path else None,
                "metrics": result.metrics,
            }
        )
        return
    if any(k.endswith(SUMMARY_SUFFIXES) for k in result.metrics):
        typer.echo("evaluation (all metrics: eval/metrics.json):")
        echo_metrics(result.metrics, SUMMARY_SUFFIXES)
    typer.echo(f"checkpoint: {result.checkpoint}")
    if result.report_path is not None:
        typer.echo(f"report: {result.report_path}")
