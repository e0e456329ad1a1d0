"""Embed an eval set with a trained model, run the configured heads, write ``eval/``.

``run_evaluation`` is what ``scibind train`` (at the end of a run) and ``scibind evaluate`` call: it embeds
the dataset (:func:`embed_dataset`), runs every task of ``recipe.eval.tasks`` (:func:`evaluate`), and
writes ``<run_dir>/eval/metrics.json`` and ``<run_dir>/eval/embeddings.parquet`` atomically.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import torch.nn.functional as F

from scibind.atomic import atomic_write_json
from scibind.errors import ConfigError
from scibind.evaluate.context import EncodeText, EvalContext
from scibind.store.store import EmbeddingStore

__all__ = ["EmbeddedSet", "embed_dataset", "evaluate", "run_evaluation", "write_metrics"]


@dataclass
class EmbeddedSet:
    """A dataset embedded by a model: what :class:`EvalContext` and the embedding store are built from.

    Attributes:
        ids: Record ids, length ``N``.
        embeddings: View -> ``float32[N, D]`` on CPU, L2-normalised, zero rows where absent.
        present: View -> ``bool[N]``.
        labels: Label column -> raw value per record (``None`` = missing).
        groups: Group per record, or ``None`` when the manifest has no ``group`` column.
        dataset: The embedded dataset (for heads that read raw view data), or ``None``.
    """

    ids: list[str]
    embeddings: dict[str, torch.Tensor]
    present: dict[str, torch.Tensor]
    labels: dict[str, list[str | None]]
    groups: list[str | None] | None = None
    dataset: Any | None = None

    def context(self, encode_text: EncodeText | None = None, text_view: str | None = None) -> EvalContext:
        """The :class:`EvalContext` heads receive."""
        return EvalContext(
            ids=self.ids,
            embeddings=self.embeddings,
            present=self.present,
            labels=self.labels,
            groups=self.groups,
            encode_text=encode_text,
            text_view=text_view,
            dataset=self.dataset,
        )

    def to_store(self) -> EmbeddingStore:
        """One store view per embedded view, with the present records only; labels and group as metadata."""
        store = EmbeddingStore()
        for view, emb in self.embeddings.items():
            rows = self.present[view].nonzero().flatten().tolist()
            meta: dict[str, list[Any]] = {
                name: [values[i] for i in rows] for name, values in self.labels.items()
            }
            if self.groups is not None:
                meta["group"] = [self.groups[i] for i in rows]
            store.add([self.ids[i] for i in rows], view, emb[rows], meta)
        return store


def _clean(value: Any) -> str | None:
    if value is None or (pd.api.types.is_scalar(value) and pd.isna(value)):
        return None
    return str(value)


def _label_names(dataset: Any) -> list[str]:
    names = [str(n) for n in getattr(getattr(dataset, "manifest", None), "label_columns", None) or []]
    extra = getattr(dataset, "labels", None)
    if isinstance(extra, (list, tuple)):
        names += [str(n) for n in extra if str(n) not in names]
    return [n for n in names if n != "group"]


def _groups(dataset: Any) -> list[str | None] | None:
    frame = getattr(getattr(dataset, "manifest", None), "frame", None)
    if frame is None or "group" not in frame.columns:
        return None
    return [_clean(g) for g in dataset.label_values("group")]


def embed_dataset(
    model: Any,
    dataset: Any,
    *,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
    views: Sequence[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> EmbeddedSet:
    """Embed every record of ``dataset`` with ``model`` (eval mode, no gradients).

    Args:
        model: A ``MultiTowerModel``: ``forward(batch) -> {view: Tensor[B, D]}``.
        dataset: A ``PairedDataset``: indexable, ``collate(items) -> Batch``, ``label_values(name)`` (also
            for ``group``), ``manifest.frame`` and ``manifest.label_columns``.
        batch_size: Records per forward pass.
        device: Where the model runs; results come back on CPU.
        views: Keep only these views (default: every view the model returns).
        progress: Called as ``progress(done, total)`` after each batch.

    Returns:
        The :class:`EmbeddedSet`.
    """
    n = len(dataset)
    ids: list[str] = []
    chunks: dict[str, list[torch.Tensor]] = {}
    masks: dict[str, list[torch.Tensor]] = {}
    was_training = bool(getattr(model, "training", False))
    model.eval()
    try:
        with torch.no_grad():
            for start in range(0, n, batch_size):
                batch = dataset.collate([dataset[i] for i in range(start, min(start + batch_size, n))])
                out = model(batch.to(device))
                ids.extend(str(i) for i in batch.ids)
                for view, emb in out.items():
                    if views is not None and view not in views:
                        continue
                    mask = (
                        batch.present[view].bool().cpu()
                        if view in batch.present
                        else emb.norm(dim=1).cpu() > 0
                    )
                    emb = F.normalize(emb.detach().float().cpu(), dim=-1) * mask[:, None]
                    chunks.setdefault(view, []).append(emb)
                    masks.setdefault(view, []).append(mask)
                if progress is not None:
                    progress(len(ids), n)
    finally:
        model.train(was_training)
    if views is not None:
        missing = [v for v in views if v not in chunks]
        if missing and n:
            raise ConfigError(
                f"views {missing} are not produced by this model; it has towers for {list(chunks)}"
            )
    labels = {name: [_clean(v) for v in dataset.label_values(name)] for name in _label_names(dataset)}
    return EmbeddedSet(
        ids=ids,
        embeddings={v: torch.cat(c) for v, c in chunks.items()},
        present={v: torch.cat(m) for v, m in masks.items()},
        labels=labels,
        groups=_groups(dataset),
        dataset=dataset,
    )


def _build_task(spec: Mapping[str, Any] | str, position: int) -> tuple[str, Callable[[EvalContext], Any]]:
    from scibind.api import create_head, get_spec

    options = {"name": spec} if isinstance(spec, str) else dict(spec)
    name = options.pop("name", None)
    if not name:
        raise ConfigError(f"eval.tasks[{position}] has no 'name'; e.g. {{name: core/retrieval}}")
    factory_spec = get_spec("heads", str(name))
    try:
        return factory_spec.name, create_head(str(name), **options)
    except TypeError as exc:
        from scibind.registry import resolve_factory

        params = list(inspect.signature(resolve_factory(factory_spec.factory)).parameters)
        raise ConfigError(
            f"eval.tasks[{position}] ({name}): invalid options {sorted(options)} ({exc}); it accepts {params}"
        ) from exc


def evaluate(
    embedded: EmbeddedSet,
    tasks: Sequence[Mapping[str, Any] | str],
    encode_text: EncodeText | None = None,
    text_view: str | None = None,
) -> dict[str, float]:
    """Run every task on ``embedded``.

    Args:
        embedded: The embedded eval set.
        tasks: ``[{"name": "core/retrieval", **options}, ...]`` (a bare name means no options).
        encode_text: The model's text tower, for zero-shot tasks.
        text_view: The view ``encode_text`` embeds.

    Returns:
        Flat metric keys -> values, in task order.

    Raises:
        ConfigError: A task is unknown, misconfigured, or two tasks produce the same key.
    """
    ctx = embedded.context(encode_text, text_view)
    metrics: dict[str, float] = {}
    owner: dict[str, str] = {}
    for position, spec in enumerate(tasks):
        name, task = _build_task(spec, position)
        for key, value in task(ctx).items():
            if key in metrics:
                raise ConfigError(
                    f"eval.tasks[{position}] ({name}) and {owner[key]} both produce metric {key!r}; "
                    "give them different options (view, label, pairs, or `key` for zero-shot tasks) or "
                    "drop one"
                )
            metrics[key] = float(value)
            owner[key] = f"eval.tasks[{position}] ({name})"
    return metrics


def write_metrics(metrics: Mapping[str, float], path: str | Path) -> Path:
    """Write ``metrics`` as JSON atomically; non-finite values become ``null``."""
    clean = {k: (v if math.isfinite(v) else None) for k, v in metrics.items()}
    return atomic_write_json(path, clean)


def run_evaluation(
    run_dir: str | Path,
    model: Any,
    dataset: Any,
    tasks: Sequence[Mapping[str, Any] | str],
    *,
    encode_text: EncodeText | None = None,
    text_view: str | None = None,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
    out_dir: str | Path | None = None,
) -> dict[str, float]:
    """Embed ``dataset``, run ``tasks`` and write ``metrics.json`` and ``embeddings.parquet``.

    Args:
        run_dir: The run directory.
        model: The trained ``MultiTowerModel``.
        dataset: The eval ``PairedDataset``.
        tasks: Task specs, as in :func:`evaluate`.
        encode_text: The model's text tower, for zero-shot tasks.
        text_view: The view ``encode_text`` embeds.
        batch_size: Records per forward pass.
        device: Where the model runs.
        out_dir: Where to write; default ``<run_dir>/eval``.

    Returns:
        The metrics.
    """
    out = Path(out_dir) if out_dir is not None else Path(run_dir) / "eval"
    embedded = embed_dataset(model, dataset, batch_size=batch_size, device=device)
    metrics = evaluate(embedded, tasks, encode_text=encode_text, text_view=text_view)
    embedded.to_store().save(out / "embeddings.parquet")
    write_metrics(metrics, out / "metrics.json")
    return metrics
