"""Naive reference losses written with explicit loops, and random inputs for comparing against them."""

from __future__ import annotations

import math

import torch
from hypothesis import strategies as st


def unit(v: torch.Tensor) -> torch.Tensor:
    return v / torch.sqrt((v * v).sum())


def pair_rows(present: dict[str, list[bool]], a: str, b: str) -> list[int]:
    return [i for i in range(len(present[a])) if present[a][i] and present[b][i]]


def positives(rows: list[int], groups: list[int] | None) -> list[list[bool]]:
    def same(i: int, j: int) -> bool:
        return i == j or (groups is not None and groups[i] >= 0 and groups[i] == groups[j])

    return [[same(i, j) for j in rows] for i in rows]


def clamped_scale(logit_scale: torch.Tensor, max_scale: float) -> torch.Tensor:
    return torch.exp(torch.clamp(logit_scale, max=math.log(max_scale)))


def ref_clip(emb, present, groups, pairs, logit_scale, max_scale=100.0, smoothing=0.0):
    """Mean over pairs of the symmetric soft-target cross-entropy, one scalar at a time."""
    s = clamped_scale(logit_scale, max_scale)
    total = 0.0
    for a, b in pairs:
        rows = pair_rows(present, a, b)
        n = len(rows)
        if n < 2:
            continue
        za = [unit(emb[a][i]) for i in rows]
        zb = [unit(emb[b][i]) for i in rows]
        pos = positives(rows, groups)
        logits = [[s * (za[i] * zb[j]).sum() for j in range(n)] for i in range(n)]
        pair = 0.0
        for direction in (0, 1):
            for i in range(n):
                row = [logits[i][j] if direction == 0 else logits[j][i] for j in range(n)]
                lse = torch.logsumexp(torch.stack(row), 0)
                n_pos = sum(pos[i])
                for j in range(n):
                    target = (1 - smoothing) * (pos[i][j] / n_pos) + smoothing / n
                    pair = pair - target * (row[j] - lse) / n
        total = total + pair / 2
    return total / len(pairs)


def ref_siglip(emb, present, groups, pairs, logit_scale, bias, max_scale=100.0):
    """Mean over pairs of -sum log sigmoid(y * logit) / n, one scalar at a time."""
    s = clamped_scale(logit_scale, max_scale)
    total = 0.0
    for a, b in pairs:
        rows = pair_rows(present, a, b)
        n = len(rows)
        if n < 2:
            continue
        za = [unit(emb[a][i]) for i in rows]
        zb = [unit(emb[b][i]) for i in rows]
        pos = positives(rows, groups)
        pair = 0.0
        for i in range(n):
            for j in range(n):
                y = 1.0 if pos[i][j] else -1.0
                logit = s * (za[i] * zb[j]).sum() + bias
                pair = pair - torch.log(1 / (1 + torch.exp(-y * logit)))
        total = total + pair / n
    return total / len(pairs)


def random_case(seed: int, batch: int, dim: int, views: list[str]) -> dict[str, torch.Tensor]:
    """Float64 leaf embeddings per view, seeded."""
    gen = torch.Generator().manual_seed(seed)
    return {v: torch.randn(batch, dim, generator=gen, dtype=torch.float64).requires_grad_() for v in views}


VIEW_NAMES = ["text", "image", "vector"]


@st.composite
def cases(draw: st.DrawFn) -> dict:
    """Random views, batch size, width, presence masks, group codes and (optionally) explicit pairs."""
    views = VIEW_NAMES[: draw(st.integers(2, 3))]
    batch = draw(st.integers(1, 7))
    mask = st.lists(st.sampled_from([True, True, False]), min_size=batch, max_size=batch)
    present = {v: draw(mask) for v in views}
    groups = draw(st.none() | st.lists(st.integers(-1, 2), min_size=batch, max_size=batch))
    ordered = [(a, b) for a in views for b in views if a != b]
    pairs = draw(st.none() | st.lists(st.sampled_from(ordered), min_size=1, max_size=3, unique=True))
    return {
        "views": views,
        "batch": batch,
        "dim": draw(st.integers(1, 5)),
        "present": present,
        "groups": groups,
        "pairs": pairs,
        "seed": draw(st.integers(0, 2**16)),
    }


def resolved_pairs(case: dict) -> list[tuple[str, str]]:
    if case["pairs"] is not None:
        return case["pairs"]
    views = sorted(case["views"])
    return [(a, b) for i, a in enumerate(views) for b in views[i + 1 :]]


def objective_inputs(case: dict) -> tuple[dict, dict, dict]:
    """(embeddings, present masks, targets) as the objective takes them."""
    emb = random_case(case["seed"], case["batch"], case["dim"], case["views"])
    present = {v: torch.tensor(m) for v, m in case["present"].items()}
    targets = {} if case["groups"] is None else {"group": torch.tensor(case["groups"])}
    return emb, present, targets


def grads(loss: torch.Tensor, params: list[torch.Tensor]) -> list[torch.Tensor]:
    out = torch.autograd.grad(loss, params, allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for p, g in zip(params, out, strict=True)]


def assert_close_all(got: list[torch.Tensor], want: list[torch.Tensor]) -> None:
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, rtol=1e-9, atol=1e-10)
