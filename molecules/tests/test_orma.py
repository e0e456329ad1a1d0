"""molecules/orma and its Sinkhorn similarities against a naive float64 reference written from equations."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from scibind.errors import ConfigError, ShapeError
from scibind_molecules.orma import OrmaObjective
from scibind_molecules.ot import multitoken_similarity, ot_similarity, sinkhorn_plan
from scibind_testkit import ObjectiveContract


def _plan_naive(sim: torch.Tensor, eps: float, iters: int) -> torch.Tensor:
    """One pair, real tokens only: ``u ← mu/(Gv)``, ``v ← nu/(Gᵀu)`` in a plain loop."""
    k, r = sim.shape
    gibbs = torch.exp(-(1 - sim) / eps)
    mu = torch.full((k,), 1.0 / k, dtype=sim.dtype)
    nu = torch.full((r,), 1.0 / r, dtype=sim.dtype)
    u, v = torch.ones(k, dtype=sim.dtype), torch.ones(r, dtype=sim.dtype)
    for _ in range(iters):
        u = mu / (gibbs @ v)
        v = nu / (gibbs.T @ u)
    return torch.diag(u) @ gibbs @ torch.diag(v)


def _reference_loss(text, text_n, mol, mol_n, pooled_t, pooled_m, scale, eps, iters, grad_plan):
    """ORMA loss pair by pair; ``text[i, :text_n[i]]`` are real tokens; mol interleaves atoms/motifs."""
    n = text.shape[0]
    t = [F.normalize(text[i, : text_n[i]], dim=-1) for i in range(n)]
    atoms = [F.normalize(mol[j, 0::2][: mol_n[j][0]], dim=-1) for j in range(n)]
    motifs = [F.normalize(mol[j, 1::2][: mol_n[j][1]], dim=-1) for j in range(n)]
    s_ta = torch.zeros(n, n, dtype=text.dtype)
    s_mm = torch.zeros(n, n, dtype=text.dtype)
    for i in range(n):
        for j in range(n):
            sim = t[i] @ atoms[j].T
            plan = _plan_naive(sim if grad_plan else sim.detach(), eps, iters)
            s_ta[i, j] = (plan * sim).sum()
            sim = t[i] @ motifs[j].T
            plan = _plan_naive(sim if grad_plan else sim.detach(), eps, iters)
            total = 0
            for r in range(motifs[j].shape[0]):
                multi = (plan[:, r : r + 1] * t[i]).sum(0) / plan[:, r].sum()
                total = total + F.normalize(multi, dim=0) @ motifs[j][r]
            s_mm[i, j] = total / motifs[j].shape[0]
    s_s = F.normalize(pooled_t, dim=-1) @ F.normalize(pooled_m, dim=-1).T
    target = torch.arange(n)
    loss = 0
    for s in (s_s, s_ta, s_mm):
        loss = loss + (F.cross_entropy(scale * s, target) + F.cross_entropy(scale * s.T, target)) / 2
    return loss


def _inputs(seed: int = 0, n: int = 5, dim: int = 8):
    gen = torch.Generator().manual_seed(seed)
    text_n = [int(x) for x in torch.randint(1, 7, (n,), generator=gen)]
    mol_n = [(int(a), int(m)) for a, m in torch.randint(1, 6, (n, 2), generator=gen)]
    t_width = max(text_n)
    m_width = max(max(a, m) for a, m in mol_n)
    text = torch.randn(n, t_width, dim, generator=gen, dtype=torch.float64)
    mol = torch.randn(n, 2 * m_width, dim, generator=gen, dtype=torch.float64)
    t_mask = torch.arange(t_width)[None] < torch.tensor(text_n)[:, None]
    a_mask = torch.arange(m_width)[None] < torch.tensor([a for a, _ in mol_n])[:, None]
    f_mask = torch.arange(m_width)[None] < torch.tensor([m for _, m in mol_n])[:, None]
    m_mask = torch.stack([a_mask, f_mask], -1).flatten(1)
    # Padding holds garbage: the masks alone must keep it out.
    text = text.masked_fill(~t_mask[..., None], 7.0)
    mol = mol.masked_fill(~m_mask[..., None], -5.0)
    pooled_t = torch.randn(n, dim, generator=gen, dtype=torch.float64)
    pooled_m = torch.randn(n, dim, generator=gen, dtype=torch.float64)
    return text, text_n, t_mask, mol, mol_n, m_mask, pooled_t, pooled_m


@pytest.mark.parametrize("grad_plan", [False, True])
def test_loss_and_gradients_match_the_naive_reference(grad_plan):
    text, text_n, t_mask, mol, mol_n, m_mask, pooled_t, pooled_m = _inputs()
    objective = OrmaObjective(
        epsilon=0.1, n_iters=15, differentiate_plan=grad_plan, temperature=0.1, rows_per_tile=2
    ).double()
    leaves = [x.clone().requires_grad_() for x in (text, mol, pooled_t, pooled_m)]
    out = objective(
        {"text": leaves[2], "molecule": leaves[3]},
        tokens={"text": leaves[0], "molecule": leaves[1]},
        token_masks={"text": t_mask, "molecule": m_mask},
    )
    out.loss.backward()
    ref_leaves = [x.clone().requires_grad_() for x in (text, mol, pooled_t, pooled_m)]
    scale = objective.scale().item()  # 1/0.1, up to the float32 rounding of the stored log
    assert abs(scale - 10) < 1e-5
    ref = _reference_loss(
        ref_leaves[0], text_n, ref_leaves[1], mol_n, ref_leaves[2], ref_leaves[3], scale, 0.1, 15, grad_plan
    )
    ref.backward()
    torch.testing.assert_close(out.loss, ref, rtol=1e-9, atol=1e-10)
    for mine, theirs in zip(leaves, ref_leaves, strict=True):
        torch.testing.assert_close(mine.grad, theirs.grad, rtol=1e-7, atol=1e-10)
    assert set(out.parts) >= {"sentence", "token_atom", "motif", "temperature"}
    # Padding gets no gradient.
    assert leaves[0].grad[~t_mask].abs().max() == 0 and leaves[1].grad[~m_mask].abs().max() == 0
    if not grad_plan:
        # The fixed-plan gradient is not the unrolled one: the option matters.
        unrolled = OrmaObjective(epsilon=0.1, n_iters=15, differentiate_plan=True, temperature=0.1).double()
        t2 = text.clone().requires_grad_()
        unrolled(
            {"text": pooled_t, "molecule": pooled_m},
            tokens={"text": t2, "molecule": mol},
            token_masks={"text": t_mask, "molecule": m_mask},
        ).loss.backward()
        assert (t2.grad - leaves[0].grad).abs().max() > 1e-6


def test_plan_marginals_and_known_values():
    gen = torch.Generator().manual_seed(3)
    sim = torch.rand(4, 3, generator=gen, dtype=torch.float64) * 2 - 1
    mask_a = torch.tensor([True, True, True, False])
    mask_b = torch.tensor([True, True, False])
    plan = sinkhorn_plan(sim, mask_a, mask_b, epsilon=0.1, n_iters=200)
    torch.testing.assert_close(plan.sum(0), torch.tensor([0.5, 0.5, 0.0], dtype=torch.float64))
    torch.testing.assert_close(plan.sum(1), torch.tensor([1 / 3, 1 / 3, 1 / 3, 0], dtype=torch.float64))
    # One token on each side: the plan is 1 and the OT similarity is the cosine.
    a = F.normalize(torch.randn(3, 1, 5, generator=gen), dim=-1)
    b = F.normalize(torch.randn(4, 1, 5, generator=gen), dim=-1)
    ones_a, ones_b = torch.ones(3, 1, dtype=torch.bool), torch.ones(4, 1, dtype=torch.bool)
    torch.testing.assert_close(ot_similarity(a, b, ones_a, ones_b), a[:, 0] @ b[:, 0].T)
    torch.testing.assert_close(multitoken_similarity(a, b, ones_a, ones_b), a[:, 0] @ b[:, 0].T)
    # Identical token sets with a small epsilon transport each token to itself: similarity ~ 1.
    x = F.normalize(torch.eye(4, dtype=torch.float64)[None], dim=-1)
    m = torch.ones(1, 4, dtype=torch.bool)
    assert ot_similarity(x, x, m, m, epsilon=0.05, n_iters=100).item() > 0.99
    # A record without tokens scores 0.
    empty = torch.zeros(1, 4, dtype=torch.bool)
    assert ot_similarity(x, x, empty, m).item() == 0
    assert multitoken_similarity(x, x, m, empty).item() == 0


def test_batch_permutation_invariance_with_tokens():
    text, _, t_mask, mol, _, m_mask, pooled_t, pooled_m = _inputs(seed=4, n=6)
    objective = OrmaObjective().double()
    perm = torch.randperm(6, generator=torch.Generator().manual_seed(0))

    def loss(p):
        return objective(
            {"text": pooled_t[p], "molecule": pooled_m[p]},
            tokens={"text": text[p], "molecule": mol[p]},
            token_masks={"text": t_mask[p], "molecule": m_mask[p]},
        ).loss

    torch.testing.assert_close(loss(perm), loss(torch.arange(6)))


def test_absent_rows_and_weights():
    text, _, t_mask, mol, _, m_mask, pooled_t, pooled_m = _inputs(seed=5, n=6)
    present = {
        "text": torch.tensor([1, 1, 0, 1, 1, 1], dtype=torch.bool),
        "molecule": torch.ones(6, dtype=torch.bool),
    }
    keep = present["text"]
    objective = OrmaObjective().double()
    masked = objective(
        {"text": pooled_t, "molecule": pooled_m},
        present,
        tokens={"text": text, "molecule": mol},
        token_masks={"text": t_mask, "molecule": m_mask},
    )
    dropped = objective(
        {"text": pooled_t[keep], "molecule": pooled_m[keep]},
        tokens={"text": text[keep], "molecule": mol[keep]},
        token_masks={"text": t_mask[keep], "molecule": m_mask[keep]},
    )
    torch.testing.assert_close(masked.loss, dropped.loss)
    # Only the sentence term: exactly CLIP at the same temperature.
    clip = OrmaObjective(token_atom_weight=0, motif_weight=0).double()
    out = clip({"text": pooled_t, "molecule": pooled_m}, tokens={"text": text, "molecule": mol})
    s = clip.scale().item() * F.normalize(pooled_t, dim=-1) @ F.normalize(pooled_m, dim=-1).T
    target = torch.arange(6)
    expected = (F.cross_entropy(s, target) + F.cross_entropy(s.T, target)) / 2
    torch.testing.assert_close(out.loss, expected)
    assert set(out.parts) == {"sentence", "logit_scale", "temperature"}


def test_bad_options_and_layout():
    with pytest.raises(ConfigError, match="epsilon"):
        OrmaObjective(epsilon=0.01)
    with pytest.raises(ConfigError, match="weights"):
        OrmaObjective(sentence_weight=0, token_atom_weight=0, motif_weight=0)
    objective = OrmaObjective()
    z = torch.randn(3, 4)
    with pytest.raises(ShapeError, match="interleaved"):
        objective({"text": z, "molecule": z}, tokens={"molecule": torch.randn(3, 5, 4)})


def test_sinkhorn_scales_to_a_training_batch():
    """A ChEBI-sized batch (64 texts x 120 tokens vs 64 molecules x 2x40 tokens) stays finite and fast."""
    gen = torch.Generator().manual_seed(0)
    objective = OrmaObjective()
    text = torch.randn(64, 120, 32, generator=gen, requires_grad=True)
    mol = torch.randn(64, 80, 32, generator=gen, requires_grad=True)
    pooled = {"text": torch.randn(64, 32, generator=gen), "molecule": torch.randn(64, 32, generator=gen)}
    out = objective(pooled, tokens={"text": text, "molecule": mol})
    out.loss.backward()
    assert (
        math.isfinite(out.loss.item()) and torch.isfinite(text.grad).all() and torch.isfinite(mol.grad).all()
    )


class TestOrmaContract(ObjectiveContract):
    objective_name = "molecules/orma"
    objective_kwargs = {"text_view": "a", "molecule_view": "b"}
