"""GRAM, soft-label/multi-positive CLIP, CWCL, prototypes, FILIP and uniformity+alignment against naive
float64 references, plus invariances and masks."""

from __future__ import annotations

import math

import pytest
import scibind
import torch
import torch.nn.functional as F
from scibind.align.filip import FilipObjective
from scibind.align.gram import GramObjective, gram_similarity
from scibind.align.pairs import anchor_pairs
from scibind.align.prototype import PrototypeObjective, sinkhorn
from scibind.errors import ConfigError

from .nmodal_reference import ref_filip, ref_gram, ref_prototype, ref_soft_clip, ref_uniformity_alignment
from .reference import grads


def emb(views: str, n: int = 5, d: int = 4, seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {v: torch.randn(n, d, generator=gen, dtype=torch.float64).requires_grad_() for v in views}


def check(loss: torch.Tensor, ref: torch.Tensor, params: list[torch.Tensor]) -> None:
    torch.testing.assert_close(loss, ref, rtol=1e-10, atol=1e-12)
    for a, b in zip(grads(loss, params), grads(ref, params), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-10)


def set_scale(obj: torch.nn.Module, scale: float) -> torch.nn.Module:
    with torch.no_grad():
        obj.logit_scale.fill_(math.log(scale))
    return obj.double()


@pytest.mark.parametrize("views", ["ab", "abc", "abcd"])
def test_gram_matches_reference_for_any_n(views):
    e = emb(views, seed=len(views))
    obj = set_scale(GramObjective(), 4.0)
    out = obj(e)
    ref = ref_gram(e["a"], [e[v] for v in views[1:]], obj.scale(), 0.1)
    check(out.loss, ref, [*e.values(), obj.logit_scale])
    # Volume of two unit vectors is sin(angle).
    za, zb = F.normalize(e["a"].detach(), dim=-1), F.normalize(e["b"].detach(), dim=-1)
    if views == "ab":
        torch.testing.assert_close(-gram_similarity(za, [zb]), (1 - (za @ zb.T) ** 2).sqrt())


def test_gram_masks_and_permutation():
    e = {k: v.detach() for k, v in emb("abc", n=6).items()}
    obj = set_scale(GramObjective(anchor="b"), 4.0)
    perm = torch.tensor([5, 3, 1, 0, 2, 4])
    torch.testing.assert_close(obj({k: v[perm] for k, v in e.items()}).loss, obj(e).loss)
    # An absent non-anchor view is left out of the volume: equal to the 2-view volume for that record.
    present = {"c": torch.tensor([1, 1, 1, 1, 1, 0], dtype=torch.bool)}
    full = obj(e, present).loss
    e2 = {k: v.clone() for k, v in e.items()}
    e2["c"][5] = 1e3
    torch.testing.assert_close(obj(e2, present).loss, full)
    vol = scibind.align.gram.gram_volume(
        F.normalize(e["b"], dim=-1),
        [F.normalize(e["a"], dim=-1), F.normalize(e["c"], dim=-1)],
        [torch.ones(6, dtype=torch.bool), present["c"]],
    )
    two = scibind.align.gram.gram_volume(F.normalize(e["b"], dim=-1), [F.normalize(e["a"], dim=-1)])
    torch.testing.assert_close(vol[:, 5], two[:, 5])


def test_soft_clip_soft_and_multi_positive_match_reference():
    e = emb("ab", n=6)
    finding = torch.tensor([0, 1, 0, 2, -1, 1])
    site = torch.tensor([3, 3, 4, 4, 3, -1])
    obj = set_scale(scibind.create_objective("core/soft-clip", labels=["finding", "site"]), 5.0)
    out = obj(e, finding=finding, site=site)
    n = 6
    shared = [
        [sum(int(c[i] >= 0 and c[i] == c[j]) for c in (finding, site)) for j in range(n)] for i in range(n)
    ]
    known = [sum(int(c[i] >= 0) for c in (finding, site)) for i in range(n)]
    w = [
        [1.0 if i == j else max(0.0, shared[i][j] / math.sqrt(known[i] * known[j])) for j in range(n)]
        for i in range(n)
    ]
    check(out.loss, ref_soft_clip(e["a"], e["b"], w, obj.scale()), [*e.values(), obj.logit_scale])

    multi = set_scale(
        scibind.create_objective("core/soft-clip", labels="finding", mode="multi_positive"), 5.0
    )
    w = [
        [float(i == j or (finding[i] >= 0 and finding[i] == finding[j])) for j in range(n)] for i in range(n)
    ]
    check(multi(e, finding=finding).loss, ref_soft_clip(e["a"], e["b"], w, multi.scale()), list(e.values()))
    # Permuting records together with their labels leaves the loss unchanged.
    perm = torch.tensor([2, 0, 1, 5, 4, 3])
    moved = multi({k: v.detach()[perm] for k, v in e.items()}, finding=finding[perm]).loss
    torch.testing.assert_close(moved, multi(e, finding=finding).loss.detach())
    with pytest.raises(ConfigError, match="exactly one"):
        scibind.create_objective("core/soft-clip")


def test_cwcl_matches_reference_and_frozen_view_gets_no_weight_gradient():
    e = emb("ab", n=5, seed=4)
    frozen = torch.randn(5, 7, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    obj = set_scale(scibind.create_objective("core/cwcl", weights_target="frozen"), 5.0)
    out = obj(e, frozen=frozen)
    p = F.normalize(frozen, dim=-1)
    w = [[1.0 if i == j else float((1 + p[i] @ p[j]) / 2) for j in range(5)] for i in range(5)]
    check(out.loss, ref_soft_clip(e["a"], e["b"], w, obj.scale()), [*e.values(), obj.logit_scale])
    by_view = set_scale(scibind.create_objective("core/cwcl", weights_view="a"), 5.0)
    pa = F.normalize(e["a"].detach(), dim=-1)
    w = [[1.0 if i == j else float((1 + pa[i] @ pa[j]) / 2) for j in range(5)] for i in range(5)]
    check(by_view(e).loss, ref_soft_clip(e["a"], e["b"], w, by_view.scale()), list(e.values()))
    with pytest.raises(ConfigError, match="exactly one"):
        scibind.create_objective("core/cwcl")


def test_uniformity_alignment_matches_reference():
    e = emb("ab", n=5, seed=5)
    obj = set_scale(
        scibind.create_objective("core/uniformity-alignment", alignment_weight=0.5, uniformity_weight=0.3),
        6.0,
    )
    out = obj(e)
    ref = ref_uniformity_alignment(e["a"], e["b"], obj.scale(), 1.0, 0.5, 0.3)
    check(out.loss, ref, [*e.values(), obj.logit_scale])
    assert {"clip", "alignment", "uniformity", "a<->b"} <= set(out.parts)


def test_prototype_matches_reference_and_sinkhorn_is_balanced():
    e = emb("ab", n=6, seed=6)
    obj = set_scale(PrototypeObjective(embed_dim=4, n_prototypes=3, epsilon=0.5), 4.0)
    out = obj(e)
    ref = ref_prototype(e["a"], e["b"], obj.prototypes, obj.scale(), 0.5, 3)
    check(out.loss, ref, [*e.values(), obj.prototypes, obj.logit_scale])
    q = sinkhorn(torch.randn(12, 4, dtype=torch.float64), 0.5, 50)
    torch.testing.assert_close(q.sum(1), torch.ones(12, dtype=torch.float64))
    torch.testing.assert_close(q.sum(0), torch.full((4,), 3.0, dtype=torch.float64), rtol=1e-4, atol=1e-4)
    with pytest.raises(ConfigError, match="embed_dim"):
        PrototypeObjective(embed_dim=8)(emb("ab"))


def test_filip_matches_reference_with_padding_and_reduces_to_clip():
    gen = torch.Generator().manual_seed(8)
    ta = torch.randn(4, 3, 5, generator=gen, dtype=torch.float64)
    tb = torch.randn(4, 2, 5, generator=gen, dtype=torch.float64)
    ta[1, 2] = 0  # padding
    tb[3, 1] = 0
    ta.requires_grad_()
    tb.requires_grad_()
    obj = set_scale(FilipObjective(rows_per_tile=3), 5.0)
    check(obj({"a": ta, "b": tb}).loss, ref_filip(ta, tb, obj.scale()), [ta, tb, obj.logit_scale])
    flat = emb("ab", n=5)
    za, zb = F.normalize(flat["a"], dim=-1), F.normalize(flat["b"], dim=-1)
    logits = obj.scale() * za @ zb.T
    target = torch.arange(5)
    clip = (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
    torch.testing.assert_close(obj(flat).loss, clip)


def test_anchor_pairs_and_masks_of_pairwise_combinations():
    assert anchor_pairs("text", ["image", "text", "labs"]) == [("text", "image"), ("text", "labs")]
    e = emb("abc", n=6, seed=2)
    obj = set_scale(scibind.create_objective("core/uniformity-alignment", anchor="a"), 3.0)
    assert set(obj(e).parts) >= {"a<->b", "a<->c"} and "b<->c" not in obj(e).parts
    present = {"b": torch.tensor([1, 0, 1, 1, 1, 1], dtype=torch.bool)}
    out = obj(e, present)
    out.loss.backward()
    assert e["b"].grad[1].abs().max() == 0
    with pytest.raises(ConfigError, match="exclude"):
        scibind.create_objective("core/filip", pairs=[["a", "b"]], anchor="a")(e)
