"""Entry point of the ``scibind`` command.

Each command group lives in its own module of this package and exposes ``register(app)``; plugins add
commands through the ``scibind_register_commands`` hook. Modules import heavy libraries inside commands so
``scibind --help`` and ``scibind plugins`` start fast.
"""

from __future__ import annotations

import importlib
import sys

import typer

from scibind.errors import ScibindError

COMMAND_MODULES = ("plugins", "inspect", "prepare", "train", "evaluate", "embed", "search", "demo", "doctor")

app = typer.Typer(
    help="scibind: bind scientific modalities into one embedding space by cross-modal contrastive learning.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

for _name in COMMAND_MODULES:
    importlib.import_module(f"scibind.cli.{_name}").register(app)


def _register_plugin_commands() -> None:
    from scibind.plugins import call_isolated

    call_isolated("scibind_register_commands", cli=app)


def main(argv: list[str] | None = None) -> None:
    """Run the command line; scibind errors print one clear line and exit with status 2.

    Args:
        argv: Arguments without the program name (default: ``sys.argv[1:]``); tests pass them directly.
    """
    try:
        _register_plugin_commands()
        app(args=argv, prog_name="scibind")
    except ScibindError as exc:
        typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
        sys.exit(2)
