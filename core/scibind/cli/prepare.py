"""`scibind prepare SOURCE... --out DIR`: read, validate and cache items; resumable; bad items quarantined."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import Annotated

import typer

from scibind.cli.output import console, print_json

__all__ = ["register"]


def prepare(
    sources: Annotated[
        list[str], typer.Argument(help="Files, folders (walked) and manifests (tables with an id column).")
    ],
    out: Annotated[
        Path, typer.Option("--out", help="Output folder: cache/, state/, quarantine.jsonl, summary.json.")
    ],
    overrides: Annotated[
        list[str] | None,
        typer.Option(
            "--set", help="reader.<reader>.<option>=<value> or views.<column>=<modality>; repeatable."
        ),
    ] = None,
    workers: Annotated[
        int, typer.Option("--workers", min=1, help="Worker processes (1 = in this process).")
    ] = 1,
    strict: Annotated[bool, typer.Option("--strict", help="Stop at the first bad item and exit 1.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Prepare and cache every item of SOURCE... with the reader that claims it.

    A rerun skips finished items and a killed run resumes. Bad items go to DIR/quarantine.jsonl (path,
    record, reason) and the rest continue. Exit status: 0 when at least one item is ready (even with some
    quarantined), 1 when every item failed or --strict saw a bad item, 2 on bad options or sources.
    """
    from scibind.prepare import run_prepare

    with ExitStack() as stack:
        on_start = on_item = None
        err = console(stderr=True)
        if not as_json and err.is_terminal:
            from rich.progress import Progress

            progress = stack.enter_context(Progress(console=err, transient=True))
            task = progress.add_task("preparing", total=None)

            def on_start(n: int) -> None:
                progress.update(task, total=n)

            def on_item(item: object, result: dict[str, object]) -> None:
                progress.advance(task)

        summary = run_prepare(
            sources,
            out,
            overrides=overrides or (),
            workers=workers,
            strict=strict,
            on_item=on_item,
            on_start=on_start,
        )
    if as_json:
        print_json(summary.to_dict())
    else:
        _show(summary.to_dict())
    raise typer.Exit(summary.exit_code)


def _show(summary: dict[str, object]) -> None:
    out_dir = Path(str(summary["out_dir"]))
    text = (
        f"{summary['total']} items: {summary['prepared']} prepared, {summary['skipped']} already done, "
        f"{summary['quarantined']} quarantined"
    )
    if summary["ignored"]:
        text += f", {summary['ignored']} unclaimed files ignored"
    out = console()
    out.print(text)
    if summary["quarantined"]:
        out.print(f"[yellow]bad items and reasons: {out_dir / 'quarantine.jsonl'}[/yellow]")
    if summary["stopped_early"]:
        out.print("[red]--strict: stopped at the first bad item[/red]")
    out.print(f"summary: {out_dir / 'summary.json'}")


def register(app: typer.Typer) -> None:
    """Add ``prepare`` to ``app``."""
    app.command("prepare")(prepare)
