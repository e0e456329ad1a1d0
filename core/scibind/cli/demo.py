"""`scibind demo`: run every installed plugin's demo recipe on example data and index the reports."""

from __future__ import annotations

from pathlib import Path

import typer

from scibind.cli.output import echo_metrics


def register(app: typer.Typer) -> None:
    """Add ``scibind demo`` to ``app``."""

    @app.command()
    def demo(
        out: Path = typer.Option(Path("demo-output"), "--out", help="Folder for the runs and the index."),
        only: list[str] = typer.Option([], "--only", help="Run only these demo recipes (repeatable)."),
        overrides: list[str] = typer.Option(
            [], "--set", help="key=value override for every demo recipe (e.g. train.max_steps=50)."
        ),
    ) -> None:
        """Train every installed plugin's demo recipe on generated example data; write an HTML index.

        Each demo recipe (registered with ``demo=True``) trains into ``OUT/<plugin>-<recipe>/`` and ends with
        its own ``report.html``; ``OUT/index.html`` links them all. Recipes whose plugin is missing
        dependencies are listed with the pip command that enables them.
        """
        from scibind.api import list_recipes
        from scibind.evaluate.report import write_index
        from scibind.train.recipe import load_recipe
        from scibind.train.trainer import train

        recipes = [r for r in list_recipes() if r.demo and (not only or r.name in only)]
        if not recipes:
            raise typer.BadParameter(f"no demo recipe matches {only}; `scibind list recipes` shows them")
        out.mkdir(parents=True, exist_ok=True)
        pages: list[tuple[str, Path]] = []
        for spec in recipes:
            if not spec.available:
                typer.echo(f"skip {spec.name}: {spec.install_hint}")
                continue
            run_dir = out / spec.name.replace("/", "-")
            typer.echo(f"== {spec.name}: training into {run_dir}")
            resume = (run_dir / "checkpoints").exists()
            result = train(load_recipe(spec.name, overrides), run_dir, resume=resume)
            echo_metrics(dict(sorted(result.metrics.items())), ("/R@1", "/MRR", "/accuracy"))
            pages.append((f"{spec.name}: {spec.description}", result.report_path))
        index = write_index(pages, out / "index.html")
        typer.echo(f"demo report: {index.resolve()}")
