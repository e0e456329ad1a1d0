from __future__ import annotations

import pytest
import torch
from scibind.align.clip import ClipObjective
from scibind.align.pairs import pair_key, positive_mask, resolve_pairs, shares_groups
from scibind.align.siglip import SigLipObjective
from scibind.errors import ConfigError, ShapeError

OBJECTIVES = [ClipObjective, SigLipObjective]


def embeddings(batch: int, dim: int = 4, views: str = "ab", seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {v: torch.randn(batch, dim, generator=gen, dtype=torch.float64).requires_grad_() for v in views}


def test_resolve_pairs_defaults_to_every_sorted_pair():
    assert resolve_pairs(None, ["vector", "image", "text"]) == [
        ("image", "text"),
        ("image", "vector"),
        ("text", "vector"),
    ]
    assert resolve_pairs([["text", "image"]], ["image", "text"]) == [("text", "image")]


@pytest.mark.parametrize(
    ("pairs", "views", "match"),
    [
        (None, ["text"], "at least two views"),
        ([("text", "text")], ["text"], "two different"),
        ([("text", "wsi")], ["text", "image"], "wsi"),
        (["ab"], ["a", "b"], "two different"),
    ],
)
def test_resolve_pairs_errors_name_the_problem(pairs, views, match):
    with pytest.raises(ConfigError, match=match):
        resolve_pairs(pairs, views)


@pytest.mark.parametrize("cls", OBJECTIVES)
def test_objectives_check_pairs_when_built(cls):
    with pytest.raises(ConfigError, match="pairs"):
        cls(pairs=["ab"])


def test_positive_mask():
    assert not shares_groups(torch.tensor([0, 1, -1, -1]))
    assert shares_groups(torch.tensor([0, 1, -1, 1]))
    assert positive_mask(None, 2).tolist() == [[True, False], [False, True]]
    mask = positive_mask(torch.tensor([0, 1, 0, -1]))
    assert mask.tolist() == [
        [True, False, True, False],
        [False, True, False, False],
        [True, False, True, False],
        [False, False, False, True],
    ]


@pytest.mark.parametrize("cls", OBJECTIVES)
def test_masked_loss_equals_loss_on_the_sub_batch(cls):
    obj = cls().double()
    emb = embeddings(7)
    present = {
        "a": torch.tensor([1, 1, 0, 1, 1, 1, 0]).bool(),
        "b": torch.tensor([1, 0, 1, 1, 1, 1, 1]).bool(),
    }
    group = torch.tensor([3, 0, 0, 3, -1, 1, 1])
    both = present["a"] & present["b"]
    out = obj(emb, present, group=group)
    sub = obj({v: e.detach()[both] for v, e in emb.items()}, group=group[both])
    torch.testing.assert_close(out.loss, sub.loss)
    out.loss.backward()
    for e in emb.values():
        assert torch.all(e.grad[~both] == 0)
        assert torch.any(e.grad[both] != 0)


@pytest.mark.parametrize("cls", OBJECTIVES)
def test_absent_row_values_do_not_matter(cls):
    obj = cls()
    emb = {v: e.detach().float() for v, e in embeddings(5).items()}
    present = {"a": torch.tensor([True, True, True, False, True])}
    garbage = {v: e.clone() for v, e in emb.items()}
    garbage["a"][3] = 1e6
    garbage["b"][3] = -3.0
    torch.testing.assert_close(obj(emb, present).loss, obj(garbage, present).loss)


@pytest.mark.parametrize("cls", OBJECTIVES)
def test_pair_with_fewer_than_two_rows_contributes_zero_but_keeps_the_graph(cls):
    obj = cls().double()
    emb = embeddings(4, views="abc")
    present = {"a": torch.tensor([True, False, False, False])}
    out = obj(emb, present)
    assert float(out.parts["a<->b"]) == 0.0 and float(out.parts["a<->c"]) == 0.0
    torch.testing.assert_close(out.loss, out.parts["b<->c"] / 3)
    out.loss.backward()
    assert all(p.grad is not None for p in obj.parameters())
    assert torch.all(emb["a"].grad == 0)


@pytest.mark.parametrize("cls", OBJECTIVES)
def test_parts_have_one_key_per_pair(cls):
    out = cls()(embeddings(3, views="cab"))
    expected = [pair_key("a", "b"), pair_key("a", "c"), pair_key("b", "c")]
    assert [k for k in out.parts if "<->" in k] == expected
    assert all(not v.requires_grad for v in out.parts.values())


@pytest.mark.parametrize("cls", OBJECTIVES)
def test_anchor_pairs_every_view_with_one(cls):
    """ImageBind style: ``anchor`` is the same as listing each pair with the anchor."""
    emb = embeddings(6, views="abc")
    torch.manual_seed(0)
    anchored = cls(anchor="b").double()(emb)
    listed = cls(pairs=[["b", "a"], ["b", "c"]]).double()(emb)
    assert set(anchored.parts) >= {"b<->a", "b<->c"} and "a<->c" not in anchored.parts
    torch.testing.assert_close(anchored.loss, listed.loss, rtol=1e-12, atol=1e-12)
    assert not torch.allclose(anchored.loss, cls().double()(emb).loss)  # all pairs differ
    with pytest.raises(ConfigError, match="exclude each other"):
        cls(pairs=[["a", "b"]], anchor="a")
    with pytest.raises(ConfigError, match="has no embeddings"):
        cls(anchor="z")(emb)


@pytest.mark.parametrize("cls", OBJECTIVES)
def test_half_precision_inputs_give_a_float32_loss(cls):
    emb = {v: e.detach().to(torch.bfloat16) for v, e in embeddings(4).items()}
    assert cls()(emb).loss.dtype == torch.float32


@pytest.mark.parametrize("cls", OBJECTIVES)
@pytest.mark.parametrize(
    ("emb", "present", "targets", "match"),
    [
        ({"a": torch.zeros(3, 4), "b": torch.zeros(2, 4)}, None, {}, "same B"),
        ({"a": torch.zeros(3, 4), "b": torch.zeros(3)}, None, {}, r"\[B, D\]"),
        ({"a": torch.zeros(3, 4), "b": torch.zeros(3, 5)}, None, {}, "embed_dim"),
        ({"a": torch.zeros(3, 4), "b": torch.zeros(3, 4)}, {"a": torch.ones(2).bool()}, {}, "present"),
        ({"a": torch.zeros(3, 4), "b": torch.zeros(3, 4)}, None, {"group": torch.zeros(4)}, "group"),
    ],
)
def test_shape_errors_name_the_input(cls, emb, present, targets, match):
    objective = cls(positive_target="group")
    with pytest.raises(ShapeError, match=match):
        objective(emb, present, **targets)
