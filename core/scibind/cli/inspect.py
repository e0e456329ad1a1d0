"""`scibind inspect PATH`: which reader claims a file or folder, and what it reads (shape, units)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from scibind.cli.output import console, print_json
from scibind.errors import ReadError, ScibindError

__all__ = ["inspect_path", "register"]


def inspect_path(path: Path, modality: str | None = None) -> dict[str, Any]:
    """Resolve the reader of ``path`` and describe what it reads.

    Args:
        path: A file or folder.
        modality: Only consider readers of this modality.

    Returns:
        ``{"path", "reader", "candidates", "description"}``; ``candidates`` are every reader whose patterns
        claim the path, highest priority first, and ``reader`` the one chosen.

    Raises:
        ReadError: The path does not exist, no reader claims it, or the reader cannot read it.
    """
    from scibind.api import create_reader
    from scibind.data.readers import find_readers, resolve_reader

    if not path.exists():
        raise ReadError("no such file or folder; check the path", path=path)
    candidates = find_readers(path, modality)
    chosen = resolve_reader(path, modality)
    reader = create_reader(chosen.name)
    try:
        description = reader.describe(path)
    except ScibindError:
        raise
    except Exception as exc:  # a library error deep inside the reader: name the file and the reader
        raise ReadError(f"reader {chosen.name!r} failed: {type(exc).__name__}: {exc}", path=path) from exc
    return {
        "path": str(path),
        "reader": chosen.name,
        "modality": chosen.modality,
        "candidates": [
            {"name": s.name, "plugin": s.plugin, "modality": s.modality, "priority": s.priority}
            for s in candidates
        ],
        "description": description,
    }


def _show(result: dict[str, Any]) -> None:
    from rich.table import Table

    from scibind.jsonable import jsonable

    out = console()
    out.print(
        f"[bold]{result['path']}[/bold]: read by [green]{result['reader']}[/green] "
        f"(modality {result['modality']})"
    )
    if len(result["candidates"]) > 1:
        names = ", ".join(f"{c['name']} (priority {c['priority']})" for c in result["candidates"])
        out.print(f"claimed by: {names}")
    table = Table(show_header=False)
    table.add_column("field")
    table.add_column("value", overflow="fold")
    for key, value in jsonable(result["description"]).items():
        table.add_row(key, str(value))
    out.print(table)


def inspect(
    path: Annotated[Path, typer.Argument(help="File or folder to inspect.")],
    modality: Annotated[
        str | None, typer.Option("--modality", help="Only consider readers of this modality.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Show which reader claims PATH (all candidates and the chosen one) and what it reads: shape, units.

    Exit status 2 when no installed reader claims PATH or it cannot be read.
    """
    result = inspect_path(path, modality)
    if as_json:
        print_json(result)
    else:
        _show(result)


def register(app: typer.Typer) -> None:
    """Add ``inspect`` to ``app``."""
    app.command("inspect")(inspect)
