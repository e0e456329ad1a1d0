"""Naive float64 references of the N-modality objectives, written from the papers' equations with loops."""

from __future__ import annotations

import itertools
import math

import torch


def unit_rows(t: torch.Tensor) -> list[torch.Tensor]:
    return [r / torch.sqrt((r * r).sum()) for r in t]


def lse(values: list[torch.Tensor]) -> torch.Tensor:
    return torch.logsumexp(torch.stack(values), 0)


def mip(*vectors: torch.Tensor) -> torch.Tensor:
    out = vectors[0]
    for v in vectors[1:]:
        out = out * v
    return out.sum()


def ref_symile(
    reps: list[torch.Tensor], s: torch.Tensor, perms: list[list[torch.Tensor]] | None
) -> torch.Tensor:
    """Symile (Saporta et al., eq. 3 with the two negative samplings); ``perms[anchor][k]`` for O(N)."""
    z = [unit_rows(r) for r in reps]
    m, n = len(z), len(z[0])
    total = 0.0
    for a in range(m):
        others = [z[k] for k in range(m) if k != a]
        for i in range(n):
            pos = s * mip(z[a][i], *[o[i] for o in others])
            if perms is None:
                cands = [
                    s * mip(z[a][i], *[o[j] for o, j in zip(others, js, strict=True)])
                    for js in itertools.product(range(n), repeat=m - 1)
                ]
            else:
                cands = [
                    pos
                    if j == i
                    else s * mip(z[a][i], *[o[int(p[j])] for o, p in zip(others, perms[a], strict=True)])
                    for j in range(n)
                ]
            total = total + (lse(cands) - pos) / n
    return total / m


def ref_gram(anchor: torch.Tensor, others: list[torch.Tensor], s: torch.Tensor, eps: float) -> torch.Tensor:
    """GRAM: V_ij = sqrt(det Gram(a_i, m_1j, ..)), symmetric smoothed CE of -V/τ."""
    a = unit_rows(anchor)
    o = [unit_rows(t) for t in others]
    n = len(a)
    vol = [[None] * n for _ in range(n)]
    for i in range(n):
        for j in range(n):
            vecs = [a[i], *[t[j] for t in o]]
            g = torch.stack([torch.stack([(u * v).sum() for v in vecs]) for u in vecs])
            vol[i][j] = torch.sqrt(torch.abs(torch.linalg.det(g)))
    total = 0.0
    for transpose in (False, True):
        for i in range(n):
            row = [-s * (vol[j][i] if transpose else vol[i][j]) for j in range(n)]
            z = lse(row)
            for j in range(n):
                target = (1 - eps) * (i == j) + eps / n
                total = total - target * (row[j] - z) / n
    return total / 2


def ref_soft_clip(za: torch.Tensor, zb: torch.Tensor, w: list[list[float]], s: torch.Tensor) -> torch.Tensor:
    """Soft-target symmetric cross-entropy with weight matrix ``w`` (rows normalised per direction)."""
    a, b = unit_rows(za), unit_rows(zb)
    n = len(a)
    total = 0.0
    for direction in (0, 1):
        for i in range(n):
            row = [s * ((a[i] * b[j]).sum() if direction == 0 else (b[i] * a[j]).sum()) for j in range(n)]
            weights = [w[i][j] if direction == 0 else w[j][i] for j in range(n)]
            z = lse(row)
            for j in range(n):
                total = total - weights[j] / sum(weights) * (row[j] - z) / n
    return total / 2


def ref_prototype(za, zb, protos, s, eps, iters):
    """SwAV swapped prediction with Sinkhorn codes (SwAV's Algorithm 1, exp form)."""
    c = unit_rows(protos)
    a, b = unit_rows(za), unit_rows(zb)
    n, k = len(a), len(c)

    def codes(rows):
        q = [[math.exp(float((r * c[j]).sum()) / eps) for r in rows] for j in range(k)]  # K x n
        total = sum(map(sum, q))
        q = [[v / total for v in row] for row in q]
        for _ in range(iters):
            q = [[v / sum(row) / k for v in row] for row in q]
            cols = [sum(q[j][i] for j in range(k)) for i in range(n)]
            q = [[q[j][i] / cols[i] / n for i in range(n)] for j in range(k)]
        return [[q[j][i] * n for j in range(k)] for i in range(n)]

    qa, qb = codes(a), codes(b)
    total = 0.0
    for q, rows in ((qa, b), (qb, a)):
        for i in range(n):
            logits = [s * (rows[i] * c[j]).sum() for j in range(k)]
            z = lse(logits)
            for j in range(k):
                total = total - q[i][j] * (logits[j] - z) / (2 * n)
    return total


def ref_filip(ta: torch.Tensor, tb: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """FILIP: token-wise max then mean, symmetric CE (zero tokens are padding)."""

    def toks(t):
        return [[u / torch.sqrt((u * u).sum()) for u in rec if float(u.abs().sum()) > 0] for rec in t]

    a, b = toks(ta), toks(tb)
    n = len(a)

    def sim(x, y):
        return sum(torch.stack([(u * v).sum() for v in y]).max() for u in x) / len(x)

    total = 0.0
    for first, second in ((a, b), (b, a)):
        for i in range(n):
            row = [s * sim(first[i], second[j]) for j in range(n)]
            total = total - (row[i] - lse(row)) / n
    return total / 2


def ref_uniformity_alignment(za, zb, s, wc, wa, wu, t=2.0):
    a, b = unit_rows(za), unit_rows(zb)
    n = len(a)
    clip = ref_soft_clip(za, zb, [[float(i == j) for j in range(n)] for i in range(n)], s)
    align = sum(((a[i] - b[i]) ** 2).sum() for i in range(n)) / n
    pts = a + b
    vals = [-t * ((pts[i] - pts[j]) ** 2).sum() for i in range(2 * n) for j in range(2 * n) if i != j]
    uniform = lse(vals) - math.log(len(vals))
    return wc * clip + wa * align + wu * uniform
