"""`scibind search`: query an embedding store with text or vectors."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from scibind.cli.output import console, print_json

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add ``scibind search`` to ``app``."""

    @app.command("search")
    def search_command(
        store_path: Annotated[
            Path, typer.Argument(metavar="STORE", help="An embedding store (.parquet/.zarr).")
        ],
        text: Annotated[
            list[str] | None,
            typer.Option("--text", help="Query text, embedded with the run's text tower (repeatable)."),
        ] = None,
        run_dir: Annotated[
            Path | None, typer.Option("--run-dir", help="The run whose text tower embeds --text.")
        ] = None,
        vector_file: Annotated[
            Path | None,
            typer.Option("--vector-file", help="A .npy file of one [D] or several [Q, D] queries."),
        ] = None,
        k: Annotated[int, typer.Option("--k", help="Hits per query.")] = 10,
        view: Annotated[str | None, typer.Option("--view", help="Search only this view.")] = None,
        backend: Annotated[str, typer.Option("--backend", help="auto, torch or faiss.")] = "auto",
        step: Annotated[int | None, typer.Option("--step", help="Checkpoint step (default: newest).")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print hits as JSON.")] = False,
    ) -> None:
        """Find the K records of STORE closest (cosine) to each query."""
        from scibind.store import EmbeddingStore, search

        if (text is None) == (vector_file is None):
            raise typer.BadParameter("give either --text (with --run-dir) or --vector-file")
        if text is not None:
            if run_dir is None:
                raise typer.BadParameter("--text needs --run-dir: the run whose text tower embeds the query")
            queries, labels = _embed_text(run_dir, step, list(text)), list(text)
        else:
            assert vector_file is not None
            queries = _load_vectors(vector_file)
            labels = [f"{vector_file.name}[{i}]" for i in range(queries.shape[0])]
        result = search(EmbeddingStore.read(store_path), queries, k=k, view=view, backend=backend)
        hits = result.to_records()
        if as_json:
            print_json([{"query": q, "hits": h} for q, h in zip(labels, hits, strict=True)])
            return
        from rich.table import Table

        for query, rows in zip(labels, hits, strict=True):
            table = Table("rank", "id", "view", "score", title=f"query: {query}", title_justify="left")
            for rank, hit in enumerate(rows, 1):
                table.add_row(str(rank), hit["id"], hit["view"], f"{hit['score']:.4f}")
            console().print(table)


def _embed_text(run_dir: Path, step: int | None, prompts: list[str]) -> object:
    from scibind.errors import ConfigError
    from scibind.train.run import load_run, text_encoder_fn

    run = load_run(run_dir, step)
    encode_text, _ = text_encoder_fn(run)
    if encode_text is None:
        raise ConfigError(
            f"the run in {run_dir} has no text tower, so --text cannot be embedded; use --vector-file instead"
        )
    return encode_text(prompts).cpu()


def _load_vectors(path: Path) -> object:
    import numpy as np

    from scibind.errors import DataError

    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot be read as a .npy array of floats ({exc})") from exc
    if array.ndim not in (1, 2) or not np.issubdtype(array.dtype, np.number):
        raise DataError(f"{path}: expected a numeric [D] or [Q, D] array, got {array.dtype} {array.shape}")
    return np.atleast_2d(array).astype(np.float32)
