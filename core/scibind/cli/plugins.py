"""`scibind plugins` and `scibind list <kind>`: what is installed, what loaded, what each plugin registered.

Both commands read only the registry (plugin modules hold registrations, factories stay unresolved), so
they start without importing torch or any domain library.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from scibind.cli.output import console, print_json
from scibind.registry import KINDS

__all__ = ["list_entries", "plugin_rows", "register"]

KEY_FIELDS: dict[str, tuple[str, ...]] = {
    "modalities": ("sample_type",),
    "readers": ("modality", "patterns", "priority"),
    "encoders": ("modality", "embed_dim"),
    "objectives": ("arity",),
    "heads": ("task",),
    "recipes": ("demo",),
    "datasets": (),
}

STATUS_STYLE = {"loaded": "green", "failed": "red", "incompatible": "red", "blocked": "yellow"}

list_app = typer.Typer(
    help="List registered components of one kind (unavailable ones show the pip command that fixes them).",
    no_args_is_help=True,
)


def plugin_rows() -> list[dict[str, Any]]:
    """One JSON-friendly record per plugin, as ``scibind plugins --json`` prints them."""
    from scibind.plugins import get_plugin_state

    state = get_plugin_state()
    return [state.records[name].to_dict() for name in sorted(state.records, key=lambda n: (n != "core", n))]


def list_entries(kind: str) -> list[dict[str, Any]]:
    """Registered components of ``kind`` as JSON-friendly dicts, with ``available`` and ``install_hint``."""
    from scibind.api import get_registry

    return [spec.to_dict() for spec in get_registry().list(kind)]


def _format_value(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    return str(value)


def _show_plugins(rows: list[dict[str, Any]]) -> None:
    from rich.table import Table

    table = Table(title="scibind plugins")
    for column in ("plugin", "distribution", "version", "status", "registered / error"):
        table.add_column(column, overflow="fold")
    for row in rows:
        if row["status"] == "loaded":
            detail = (
                "; ".join(f"{kind}: {len(names)}" for kind, names in row["registered"].items()) or "nothing"
            )
        else:
            detail = row["error"]
        style = STATUS_STYLE.get(row["status"], "")
        table.add_row(
            row["name"], row["distribution"], row["version"], f"[{style}]{row['status']}[/{style}]", detail
        )
    console().print(table)


def _show_entries(kind: str, entries: list[dict[str, Any]]) -> None:
    from rich.table import Table

    fields = KEY_FIELDS[kind]
    table = Table(title=f"scibind {kind}")
    for column in ("name", "plugin", *fields, "description", "available"):
        table.add_column(column, overflow="fold")
    for entry in entries:
        available = "yes" if entry["available"] else f"[red]no[/red]: {entry['install_hint']}"
        table.add_row(
            entry["name"],
            entry["plugin"],
            *(_format_value(entry.get(f, "")) for f in fields),
            entry["description"],
            available,
        )
    console().print(table)


def _make_list_command(kind: str) -> None:
    def command(
        as_json: Annotated[
            bool, typer.Option("--json", help="Print a JSON list instead of a table.")
        ] = False,
    ) -> None:
        entries = list_entries(kind)
        if as_json:
            print_json(entries)
        else:
            _show_entries(kind, entries)

    shown = ", ".join(("name", "plugin", *KEY_FIELDS[kind]))
    command.__doc__ = f"List registered {kind}: {shown}, description, and the pip command when unavailable."
    list_app.command(kind)(command)


for _kind in KINDS:
    _make_list_command(_kind)


def plugins(
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list instead of a table.")] = False,
) -> None:
    """Show every plugin: distribution, version, status (loaded/failed/blocked/incompatible), registrations.

    A failed plugin is shown with its error and skipped; with SCIBIND_STRICT_PLUGINS=1 it is fatal.
    """
    rows = plugin_rows()
    if as_json:
        print_json(rows)
    else:
        _show_plugins(rows)


def register(app: typer.Typer) -> None:
    """Add ``plugins`` and the ``list`` group to ``app``."""
    app.command("plugins")(plugins)
    app.add_typer(list_app, name="list")
