from __future__ import annotations

import pytest
import torch
from scibind.align.model import MultiTowerModel, Tower, build_model
from scibind.builtin.text_encoders import TinyTextEncoder
from scibind.builtin.vector_encoders import tiny_mlp
from scibind.data.types import Batch, ModalityBatch
from scibind.errors import ConfigError


def make_batch() -> Batch:
    present = {
        "text": torch.tensor([True, False, True, True]),
        "vector": torch.tensor([True, True, False, True]),
    }
    views = {
        "text": ModalityBatch(["a cat", "a dog", "a kitten"], torch.tensor([0, 2, 3])),
        "vector": ModalityBatch(torch.randn(3, 5), torch.tensor([0, 1, 3])),
    }
    return Batch(ids=["r0", "r1", "r2", "r3"], views=views, present=present)


def make_model(**tower_kw) -> MultiTowerModel:
    torch.manual_seed(0)
    towers = {
        "text": Tower(TinyTextEncoder(), 16, **tower_kw),
        "vector": Tower(tiny_mlp(5), 16, projection="mlp"),
    }
    return MultiTowerModel(towers, embed_dim=16)


def test_forward_gives_unit_rows_for_present_and_zero_rows_for_absent_records():
    model = make_model()
    batch = make_batch()
    out = model(batch)
    for view, z in out.items():
        assert z.shape == (4, 16) and z.dtype == torch.float32
        present = batch.present[view]
        torch.testing.assert_close(z[present].norm(dim=1), torch.ones(int(present.sum())))
        assert torch.all(z[~present] == 0)
    torch.testing.assert_close(out["text"][[0, 2, 3]], model.encode("text", ["a cat", "a dog", "a kitten"]))
    sum(z.sum() for z in out.values()).backward()
    assert all(p.grad is not None for p in model.parameters())


def test_a_view_absent_from_the_whole_batch_gives_zeros():
    batch = make_batch()
    del batch.views["vector"]
    batch.present["vector"] = torch.zeros(4, dtype=torch.bool)
    out = make_model()(batch)
    assert torch.all(out["vector"] == 0) and out["vector"].shape == (4, 16)


def test_frozen_encoder_gets_no_gradient_and_stays_in_eval_mode():
    model = make_model(freeze_encoder=True)
    model.train()
    text = model.towers["text"]
    assert not text.encoder.training and text.projection.training
    assert not any(p.requires_grad for p in text.encoder.parameters())
    model(make_batch())["text"].sum().backward()
    assert text.projection.weight.grad is not None


def test_projection_none_needs_matching_widths():
    same = Tower(TinyTextEncoder(embed_dim=16), 16, projection="none")
    assert isinstance(same.projection, torch.nn.Identity)
    with pytest.raises(ConfigError, match="embed_dim"):
        Tower(TinyTextEncoder(embed_dim=32), 16, projection="none")
    with pytest.raises(ConfigError, match="projection"):
        Tower(TinyTextEncoder(), 16, projection="conv")


def test_encode_unknown_view_is_a_config_error():
    with pytest.raises(ConfigError, match="'image'"):
        make_model().encode("image", torch.zeros(1, 3, 4, 4))


def test_build_model_from_a_recipe_section():
    model = build_model(
        {
            "text": {"encoder": "core/tiny-text", "projection": "linear"},
            "view_b": {"encoder": "core/tiny-mlp", "encoder_kwargs": {"in_dim": 5}, "freeze_encoder": True},
        },
        embed_dim=8,
    )
    assert model.views == ["text", "view_b"]
    assert model.towers["view_b"].modality == "vector"
    assert model.encode("view_b", torch.randn(2, 5)).shape == (2, 8)


@pytest.mark.parametrize(
    ("cfg", "match"),
    [
        ({"text": {"encoder": "core/tiny-mlp", "encoder_kwargs": {"in_dim": 3}}}, "'vector'.*'text'"),
        ({"a": {"encoder": "core/tiny-text", "modality": "image"}}, "'text'.*'image'"),
        ({"a": {"encoder": "core/tiny-text", "proj": "linear"}}, "unknown keys"),
        ({"a": {"projection": "linear"}}, "encoder is missing"),
    ],
)
def test_build_model_errors_name_the_tower(cfg, match):
    with pytest.raises(ConfigError, match=match):
        build_model(cfg, embed_dim=8)
