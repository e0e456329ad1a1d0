"""Output helpers shared by the CLI commands: a rich console for people, plain JSON for pipelines."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import typer

from scibind.jsonable import jsonable

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["console", "echo_metrics", "print_json"]


def console(*, stderr: bool = False) -> Console:
    """A rich console bound to the current stdout/stderr (created per call so captured streams work)."""
    from rich.console import Console

    return Console(stderr=stderr, soft_wrap=False)


def print_json(value: Any) -> None:
    """Print ``value`` as indented JSON on stdout (no colour, no wrapping: safe to pipe into ``jq``)."""
    typer.echo(json.dumps(jsonable(value), indent=2))


def echo_metrics(metrics: dict[str, float], suffixes: tuple[str, ...]) -> None:
    """Print the metrics whose keys end with one of ``suffixes``, aligned, each beside its ``<key>_chance``.

    Args:
        metrics: Flat metric keys (``"text->vector/R@1"``) and values, as in ``eval/metrics.json``.
        suffixes: Which keys to show (``("/R@1", "/MRR")``).
    """
    shown = {k: v for k, v in metrics.items() if k.endswith(suffixes)}
    width = max((len(k) for k in shown), default=0)
    for key, value in shown.items():
        chance = metrics.get(f"{key}_chance")
        extra = f"   (chance {chance:.4f})" if chance is not None else ""
        typer.echo(f"  {key:<{width}}  {value:.4f}{extra}")
