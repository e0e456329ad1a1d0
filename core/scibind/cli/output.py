"""Output helpers shared by the CLI commands: a rich console for people, plain JSON for pipelines."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import typer

from scibind.jsonable import jsonable

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["console", "print_json"]


def console(*, stderr: bool = False) -> Console:
    """A rich console bound to the current stdout/stderr (created per call so captured streams work)."""
    from rich.console import Console

    return Console(stderr=stderr, soft_wrap=False)


def print_json(value: Any) -> None:
    """Print ``value`` as indented JSON on stdout (no colour, no wrapping: safe to pipe into ``jq``)."""
    typer.echo(json.dumps(jsonable(value), indent=2))
