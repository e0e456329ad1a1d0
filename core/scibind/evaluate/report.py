"""The per-run HTML report (``report.html`` + PNGs in ``report/``) and the demo index page.

The report reads what a run leaves behind: ``metrics.jsonl`` (training log), ``eval/metrics.json`` and
``eval/embeddings.parquet``; each section is skipped when its input is missing. Plots are drawn with
matplotlib's Agg canvas (no display, no global pyplot state). The HTML has inline CSS, references its PNGs
by relative path, and escapes every piece of text it shows.
"""

from __future__ import annotations

import html
import importlib.util
import json
import os
import re
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
import torch

from scibind.atomic import atomic_write_text
from scibind.errors import MissingDependencyError
from scibind.evaluate.retrieval import retrieval_ranks
from scibind.store.store import EmbeddingStore

__all__ = ["write_index", "write_report"]

RETRIEVAL_KEY = re.compile(r"^(?P<pair>[^/]+->[^/]+)/(?P<metric>[^/]+)$")
RECALL_COLUMNS = ("R@1", "R@5", "R@10", "MRR", "median_rank", "n")
SIM_RECORDS = 64
CSS = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222;padding:0 1em}
h1{font-size:1.6em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.6em 0}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th:first-child,td:first-child{text-align:left}.chance{color:#888;font-size:.85em}
img{max-width:100%;border:1px solid #eee;margin:.4em 0}pre{background:#f6f6f6;padding:.8em;overflow:auto}
.note{color:#666}
"""


def _figure(width: float = 6.0, height: float = 4.0) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, format="png")
    return path


def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def _img(path: Path, base: Path, alt: str) -> str:
    rel = quote(os.path.relpath(path, base).replace(os.sep, "/"))
    return f'<img src="{_esc(rel)}" alt="{_esc(alt)}">'


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.0f}" if float(value).is_integer() and abs(value) >= 1 else f"{value:.4g}"


def read_history(path: Path) -> tuple[list[dict[str, Any]], int]:
    """Parse a ``metrics.jsonl``; returns the rows and the number of unreadable lines (skipped)."""
    rows, bad = [], 0
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            bad += 1
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows, bad


def plot_history(rows: Sequence[Mapping[str, Any]], path: Path) -> Path | None:
    """Loss curves (every key containing ``loss``) and one small panel per other logged number."""
    series: dict[str, tuple[list[float], list[float]]] = {}
    for i, row in enumerate(rows):
        step = row.get("step", i)
        for key, value in row.items():
            if key == "step" or isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            xs, ys = series.setdefault(key, ([], []))
            xs.append(float(step))
            ys.append(float(value))
    if not series:
        return None
    losses = [k for k in series if "loss" in k]
    others = [k for k in series if k not in losses][:6]
    panels = 1 + len(others)
    cols = min(panels, 3)
    nrows = -(-panels // cols)
    fig = _figure(4.2 * cols, 3.2 * nrows)
    axes = fig.subplots(nrows, cols, squeeze=False).flatten()
    for key in losses or list(series)[:1]:
        axes[0].plot(*series[key], label=key, lw=1.2)
    axes[0].set(title="training loss", xlabel="step")
    axes[0].legend(fontsize=7)
    for ax, key in zip(axes[1:], others, strict=False):
        ax.plot(*series[key], lw=1.2, color="tab:green")
        ax.set(title=key, xlabel="step")
    for ax in axes[panels:]:
        ax.set_axis_off()
    return _save(fig, path)


def retrieval_table(metrics: Mapping[str, float | None]) -> dict[str, dict[str, float | None]]:
    """Group ``"<a>-><b>/<metric>"`` keys by direction: ``{direction: {metric: value}}``."""
    table: dict[str, dict[str, float | None]] = {}
    for key, value in metrics.items():
        match = RETRIEVAL_KEY.match(key)
        if match:
            table.setdefault(match["pair"], {})[match["metric"]] = value
    return table


def plot_retrieval(table: Mapping[str, Mapping[str, float | None]], path: Path) -> Path | None:
    """Bar chart of R@1/5/10 per direction with chance level marked."""
    ks = ["R@1", "R@5", "R@10"]
    directions = [d for d in table if any(table[d].get(k) is not None for k in ks)]
    if not directions:
        return None
    fig = _figure(max(5.0, 1.4 * len(directions) + 2), 3.8)
    ax = fig.subplots()
    width = 0.8 / len(ks)
    x = np.arange(len(directions))
    for j, k in enumerate(ks):
        values = [table[d].get(k) or 0.0 for d in directions]
        chance = [table[d].get(f"{k}_chance") for d in directions]
        pos = x + (j - 1) * width
        ax.bar(pos, values, width, label=k)
        cx = [p for p, c in zip(pos, chance, strict=True) if c is not None]
        ax.scatter(
            cx,
            [c for c in chance if c is not None],
            marker="_",
            s=300,
            color="k",
            zorder=3,
            label="chance" if j == 0 else None,
        )
    ax.set_xticks(x, directions, rotation=20, ha="right", fontsize=8)
    ax.set(ylim=(0, 1.05), ylabel="recall", title="retrieval vs chance")
    ax.legend(fontsize=7)
    return _save(fig, path)


def _pair_vectors(store: EmbeddingStore, a: str, b: str) -> tuple[list[str], torch.Tensor, torch.Tensor]:
    va, vb = store[a], store[b]
    pos_b = {i: j for j, i in enumerate(vb.ids)}
    common = [(i, pos_b[rid]) for i, rid in enumerate(va.ids) if rid in pos_b]
    ia = [i for i, _ in common]
    ib = [j for _, j in common]
    xa = torch.nn.functional.normalize(torch.from_numpy(va.vectors[ia]), dim=-1)
    xb = torch.nn.functional.normalize(torch.from_numpy(vb.vectors[ib]), dim=-1)
    return [va.ids[i] for i in ia], xa, xb


def plot_similarity(ids: list[str], xa: torch.Tensor, xb: torch.Tensor, a: str, b: str, path: Path) -> Path:
    """Cosine similarity matrix of the first :data:`SIM_RECORDS` paired records (diagonal = positives)."""
    n = min(SIM_RECORDS, len(ids))
    sims = (xa[:n] @ xb[:n].T).numpy()
    fig = _figure(5.4, 4.6)
    ax = fig.subplots()
    im = ax.imshow(sims, cmap="viridis", vmin=-1, vmax=1)
    fig.colorbar(im, ax=ax, label="cosine")
    ax.set(title=f"similarity, first {n} records", xlabel=f"{b} (record)", ylabel=f"{a} (record)")
    return _save(fig, path)


def plot_ranks(xa: torch.Tensor, xb: torch.Tensor, a: str, b: str, path: Path) -> Path:
    """Histogram of the rank of the correct item, both directions (log-spaced bins)."""
    n = xa.shape[0]
    fig = _figure(5.6, 3.6)
    ax = fig.subplots()
    bins = np.unique(np.geomspace(1, n + 1, num=min(40, n + 1)).round())
    for q, g, label in ((xa, xb, f"{a}->{b}"), (xb, xa, f"{b}->{a}")):
        ax.hist(retrieval_ranks(q, g).numpy(), bins=bins, alpha=0.6, label=label)
    if n > 1:
        ax.set_xscale("log")
    ax.axvline((n + 1) / 2, color="k", ls="--", lw=1, label="chance median")
    ax.set(title=f"rank of the correct item (n={n})", xlabel="rank", ylabel="queries")
    ax.legend(fontsize=7)
    return _save(fig, path)


def _map_points(store: EmbeddingStore, max_points: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    x = np.concatenate([store[v].vectors for v in store.views])
    labels = np.concatenate([[v] * len(store[v].ids) for v in store.views])
    if len(x) > max_points:
        keep = np.sort(np.random.default_rng(seed).choice(len(x), max_points, replace=False))
        x, labels = x[keep], labels[keep]
    return x, labels


def pca_2d(x: np.ndarray) -> np.ndarray:
    """Project rows of ``x`` on their first two principal components."""
    centered = x - x.mean(0)
    _, _, vt = np.linalg.svd(centered, full_matrices=False)
    out = centered @ vt[:2].T
    return out if out.shape[1] == 2 else np.pad(out, ((0, 0), (0, 2 - out.shape[1])))


def umap_enabled() -> bool:
    """Whether reports draw a UMAP map by default.

    True when ``SCIBIND_REPORT_UMAP=1`` and umap-learn is importable. It is opt-in because UMAP's first call
    compiles with numba (about 15 s on a 2-core CPU, more than a small demo run takes); the PCA map is always
    drawn.
    """
    return os.environ.get("SCIBIND_REPORT_UMAP", "0") == "1" and importlib.util.find_spec("umap") is not None


def umap_2d(x: np.ndarray, seed: int) -> np.ndarray:
    """UMAP embedding of ``x`` (needs umap-learn)."""
    try:
        import umap
    except ImportError as exc:
        raise MissingDependencyError("the UMAP map needs umap-learn; pip install umap-learn") from exc
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reducer = umap.UMAP(n_components=2, n_neighbors=min(15, len(x) - 1), random_state=seed)
        return np.asarray(reducer.fit_transform(x))


def plot_map(points: np.ndarray, labels: np.ndarray, title: str, path: Path) -> Path:
    """Scatter of the joint space coloured by view."""
    fig = _figure(5.6, 4.8)
    ax = fig.subplots()
    for view in dict.fromkeys(labels.tolist()):
        sel = labels == view
        ax.scatter(points[sel, 0], points[sel, 1], s=6, alpha=0.6, label=view)
    ax.set(title=title, xticks=[], yticks=[])
    ax.legend(fontsize=7, markerscale=2)
    return _save(fig, path)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{_esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _retrieval_html(table: Mapping[str, Mapping[str, float | None]]) -> str:
    rows = []
    for direction, values in table.items():
        cells = [_esc(direction)]
        for col in RECALL_COLUMNS:
            cell = _esc(_fmt(values.get(col)))
            chance = values.get(f"{col}_chance")
            if chance is not None:
                cell += f' <span class="chance">(chance {_esc(_fmt(chance))})</span>'
            cells.append(cell)
        rows.append(cells)
    return _table(["direction", *RECALL_COLUMNS], rows)


def _page(title: str, body: str) -> str:
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{_esc(title)}</title>'
        f"<style>{CSS}</style></head><body><h1>{_esc(title)}</h1>\n{body}\n</body></html>\n"
    )


def write_report(
    run_dir: str | Path, *, umap: bool | None = None, max_map_points: int = 5000, seed: int = 0
) -> Path:
    """Write ``<run_dir>/report.html`` with its PNG plots in ``<run_dir>/report/``.

    Args:
        run_dir: A run directory (sections whose inputs are missing are left out).
        umap: Also draw a UMAP map: ``None`` = when :func:`umap_enabled`, ``True`` = always (raises
            :class:`MissingDependencyError` without umap-learn), ``False`` = never.
        max_map_points: Rows (seeded sample) shown in the 2D maps.
        seed: Seed of that sample and of UMAP.

    Returns:
        The path of ``report.html``.
    """
    run_dir = Path(run_dir)
    fig_dir = run_dir / "report"
    fig_dir.mkdir(parents=True, exist_ok=True)
    sections: list[str] = []

    history_path = run_dir / "metrics.jsonl"
    if history_path.exists():
        rows, bad = read_history(history_path)
        png = plot_history(rows, fig_dir / "loss.png")
        note = f'<p class="note">{bad} unreadable line(s) of metrics.jsonl skipped.</p>' if bad else ""
        last = rows[-1] if rows else {}
        summary = f"<p>{len(rows)} logged steps; last step {_esc(last.get('step', '-'))}.</p>"
        sections.append(
            "<h2>Training</h2>" + summary + note + (_img(png, run_dir, "loss curves") if png else "")
        )

    metrics: dict[str, float | None] = {}
    metrics_path = run_dir / "eval" / "metrics.json"
    if metrics_path.exists():
        metrics = json.loads(metrics_path.read_text(encoding="utf-8"))
    table = retrieval_table(metrics)
    if table:
        png = plot_retrieval(table, fig_dir / "retrieval.png")
        sections.append(
            "<h2>Retrieval</h2>" + _retrieval_html(table) + (_img(png, run_dir, "retrieval") if png else "")
        )
    other = [(k, v) for k, v in metrics.items() if not RETRIEVAL_KEY.match(k)]
    if other:
        sections.append(
            "<h2>Other metrics</h2>"
            + _table(["metric", "value"], [[_esc(k), _esc(_fmt(v))] for k, v in other])
        )

    store_path = run_dir / "eval" / "embeddings.parquet"
    if store_path.exists():
        sections.append(
            _embedding_section(
                EmbeddingStore.read(store_path), table, run_dir, fig_dir, umap, max_map_points, seed
            )
        )

    config = run_dir / "config.yaml"
    if config.exists():
        sections.append(
            f"<h2>Config</h2><details><summary>config.yaml</summary><pre>"
            f"{_esc(config.read_text(encoding='utf-8'))}</pre></details>"
        )
    if not sections:
        sections.append(
            '<p class="note">Nothing to report yet: no metrics.jsonl, eval/metrics.json or '
            "eval/embeddings.parquet in this run directory.</p>"
        )
    return atomic_write_text(
        run_dir / "report.html", _page(f"scibind report: {run_dir.name}", "\n".join(sections))
    )


def _embedding_section(
    store: EmbeddingStore,
    table: Mapping[str, Any],
    run_dir: Path,
    fig_dir: Path,
    umap: bool | None,
    max_map_points: int,
    seed: int,
) -> str:
    parts = ["<h2>Joint space</h2>"]
    pairs = [tuple(d.split("@")[0].split("->")) for d in table]
    pairs = [p for p in pairs if len(p) == 2 and p[0] in store and p[1] in store] or (
        [tuple(store.views[:2])] if len(store.views) >= 2 else []
    )
    if pairs:
        a, b = pairs[0]
        ids, xa, xb = _pair_vectors(store, a, b)
        if ids:
            parts.append(
                _img(plot_similarity(ids, xa, xb, a, b, fig_dir / "similarity.png"), run_dir, "similarity")
            )
            parts.append(_img(plot_ranks(xa, xb, a, b, fig_dir / "ranks.png"), run_dir, "rank histogram"))
    x, labels = _map_points(store, max_map_points, seed)
    if len(x) >= 3:
        parts.append(
            _img(plot_map(pca_2d(x), labels, "PCA of the joint space", fig_dir / "pca.png"), run_dir, "PCA")
        )
        if umap is None:
            umap = umap_enabled()
        if umap and len(x) >= 10:
            png = plot_map(umap_2d(x, seed), labels, "UMAP of the joint space", fig_dir / "umap.png")
            parts.append(_img(png, run_dir, "UMAP"))
    return "".join(parts)


def write_index(pages: Sequence[tuple[str, str | Path]], out: str | Path) -> Path:
    """Write an HTML page linking ``pages`` (title, path), with links relative to ``out``'s folder."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    base = out.parent.resolve()
    items = []
    for title, path in pages:
        rel = quote(os.path.relpath(Path(path).resolve(), base).replace(os.sep, "/"))
        items.append(f'<li><a href="{_esc(rel)}">{_esc(title)}</a></li>')
    body = f"<ul>{''.join(items)}</ul>" if items else '<p class="note">No reports.</p>'
    return atomic_write_text(out, _page("scibind demo", body))
