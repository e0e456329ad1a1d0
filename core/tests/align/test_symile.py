from __future__ import annotations

import itertools
import math

import pytest
import scibind
import torch
import torch.nn.functional as F
from scibind.align.symile import SymileObjective, mip_similarity, symile_loss
from scibind.errors import ConfigError

from .nmodal_reference import ref_symile
from .reference import grads

symile_pkg = pytest.importorskip("symile")


def reps(m: int, n: int, d: int = 5, seed: int = 0) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(n, d, generator=gen, dtype=torch.float64).requires_grad_() for _ in range(m)]


def run(obj: SymileObjective, xs: list[torch.Tensor], seed: int = 7, present=None) -> torch.Tensor:
    torch.manual_seed(seed)
    return obj({f"v{i}": x for i, x in enumerate(xs)}, present).loss


@pytest.mark.parametrize(("scheme", "m"), [("n", 2), ("n", 3), ("n", 4), ("n_squared", 3), ("n_squared", 4)])
@pytest.mark.parametrize("tile", [7, 1 << 22])
def test_values_and_gradients_equal_the_symile_package(scheme, m, tile):
    xs = reps(m, 6 if m < 4 else 4, seed=m)
    obj = SymileObjective(
        views=[f"v{i}" for i in range(m)], negative_sampling=scheme, tile_elements=tile
    ).double()
    with torch.no_grad():
        obj.logit_scale.fill_(math.log(3.0))
    ours = run(obj, xs)
    scale = obj.logit_scale.detach().clone().requires_grad_()
    torch.manual_seed(7)  # same permutations for "n"
    theirs = symile_pkg.Symile(scheme)([F.normalize(x, dim=-1) for x in xs], scale.exp())
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-12)
    for a, b in zip(grads(ours, [*xs, obj.logit_scale]), grads(theirs, [*xs, scale]), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("scheme", ["n", "n_squared"])
def test_matches_naive_reference(scheme):
    xs = reps(3, 4, seed=3)
    obj = SymileObjective(negative_sampling=scheme, views=["v0", "v1", "v2"], tile_elements=5).double()
    loss = run(obj, xs, seed=11)
    perms = None
    if scheme == "n":
        torch.manual_seed(11)
        perms = [[torch.randperm(4) for _ in range(2)] for _ in range(3)]
    ref = ref_symile(xs, obj.scale(), perms)
    torch.testing.assert_close(loss, ref, rtol=1e-12, atol=1e-12)
    params = [*xs, obj.logit_scale]
    for a, b in zip(grads(loss, params), grads(ref, params), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(("scheme", "m"), [("n", 3), ("n", 4), ("n_squared", 3)])
def test_row_shards_sum_to_the_loss_and_its_gradients(scheme, m):
    """What each rank computes under torchrun: the shards of a row partition add up exactly."""
    n = 7
    xs = [F.normalize(x, dim=-1) for x in reps(m, n, seed=5)]
    scale = torch.tensor(4.0, dtype=torch.float64, requires_grad=True)
    gen = torch.Generator().manual_seed(2)
    perms = [[torch.randperm(n, generator=gen) for _ in range(m - 1)] for _ in range(m)]
    perms = perms if scheme == "n" else None
    params = [*xs, scale]
    full, per_anchor = symile_loss(xs, scale, scheme, perms, tile_elements=9)
    want = grads(full, params)
    bounds = [0, 2, 3, 7]  # uneven shards, one of a single row
    shards = [symile_loss(xs, scale, scheme, perms, 9, rows=(a, b)) for a, b in itertools.pairwise(bounds)]
    torch.testing.assert_close(sum(loss for loss, _ in shards), full, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(sum(parts for _, parts in shards), per_anchor, rtol=1e-12, atol=1e-12)
    got = [sum(g) for g in zip(*(grads(loss, params) for loss, _ in shards), strict=True)]
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    empty, _ = symile_loss(xs, scale, scheme, perms, 9, rows=(4, 4))
    assert float(empty) == 0.0


def test_permuting_rows_and_scaling_temperature():
    xs = [x.detach() for x in reps(3, 5, seed=1)]
    obj = SymileObjective(negative_sampling="n_squared").double()
    perm = torch.randperm(5, generator=torch.Generator().manual_seed(0))
    base = run(obj, xs)
    torch.testing.assert_close(run(obj, [x[perm] for x in xs]), base)
    torch.testing.assert_close(run(obj, [x * 3.0 for x in xs]), base)  # normalised inside
    hot = SymileObjective(negative_sampling="n_squared", temperature=0.5).double()
    ref = ref_symile(xs, torch.tensor(2.0, dtype=torch.float64), None)
    torch.testing.assert_close(run(hot, xs), ref)


def test_missing_views_drop_and_learned():
    xs = reps(3, 6, seed=2)
    present = {"v0": torch.tensor([1, 1, 1, 0, 1, 1], dtype=torch.bool)}
    drop = SymileObjective(negative_sampling="n_squared").double()
    keep = present["v0"]
    torch.testing.assert_close(
        run(drop, xs, present=present), run(drop, [x.detach()[keep] for x in xs]), rtol=1e-12, atol=1e-12
    )
    learned = SymileObjective(
        views=["v0", "v1", "v2"], negative_sampling="n_squared", missing="learned", embed_dim=5
    ).double()
    loss = run(learned, xs, present=present)
    loss.backward()
    assert xs[0].grad[3].abs().max() == 0
    assert learned.missing_embeddings.grad[0].abs().sum() > 0  # the absent row used v0's missing vector
    assert learned.missing_embeddings.grad[1:].abs().max() == 0
    with pytest.raises(ConfigError, match="embed_dim"):
        SymileObjective(missing="learned")


def test_registered_and_retrieval_similarity():
    obj = scibind.create_objective("core/symile", negative_sampling="n_squared", temperature=0.1)
    assert isinstance(obj, SymileObjective)
    assert float(obj.scale()) == pytest.approx(10.0)
    xs = [F.normalize(x.detach().float(), dim=-1) for x in reps(3, 4)]
    theirs = symile_pkg.MIPSimilarity()(xs[0], [xs[1], xs[2]])
    torch.testing.assert_close(mip_similarity(xs[0], [xs[1], xs[2]]), theirs)
    with pytest.raises(ConfigError, match="negative_sampling"):
        SymileObjective(negative_sampling="n3")
