from __future__ import annotations

import math

import pytest
import scibind
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from scibind.align.clip import ClipObjective
from scibind.errors import ConfigError

from .reference import assert_close_all, cases, grads, objective_inputs, ref_clip, resolved_pairs


@settings(max_examples=40, deadline=None)
@given(case=cases(), smoothing=st.sampled_from([0.0, 0.1]), log_scale=st.floats(0.0, 5.5))
def test_value_and_gradients_match_naive_reference(case, smoothing, log_scale):
    obj = ClipObjective(pairs=case["pairs"], label_smoothing=smoothing, positive_target="group").double()
    with torch.no_grad():
        obj.logit_scale.fill_(log_scale)
    emb, present, targets = objective_inputs(case)
    out = obj(emb, present, **targets)
    ref = (
        ref_clip(
            emb, case["present"], case["groups"], resolved_pairs(case), obj.logit_scale, smoothing=smoothing
        )
        + 0 * obj.logit_scale
    )
    torch.testing.assert_close(out.loss, ref, rtol=1e-9, atol=1e-10)
    params = [*emb.values(), obj.logit_scale]
    assert_close_all(grads(out.loss, params), grads(ref, params))


def open_clip_loss(image: torch.Tensor, text: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    # open_clip ClipLoss (world_size 1): logits = scale * image @ text.T, mean of both cross-entropies.
    logits_per_image = logit_scale * image @ text.T
    logits_per_text = logit_scale * text @ image.T
    labels = torch.arange(image.shape[0])
    return (F.cross_entropy(logits_per_image, labels) + F.cross_entropy(logits_per_text, labels)) / 2


def test_equals_open_clip_formula_at_full_presence():
    gen = torch.Generator().manual_seed(0)
    image = F.normalize(torch.randn(16, 8, generator=gen, dtype=torch.float64), dim=-1)
    text = F.normalize(torch.randn(16, 8, generator=gen, dtype=torch.float64), dim=-1)
    obj = ClipObjective(pairs=[("image", "text")]).double()
    out = obj({"image": image, "text": text})
    scale = torch.tensor(1 / 0.07, dtype=torch.float64)
    torch.testing.assert_close(out.loss, open_clip_loss(image, text, scale))
    assert set(out.parts) == {"image<->text", "logit_scale", "temperature"}
    assert float(out.parts["temperature"]) == pytest.approx(0.07)


def test_logit_scale_is_clamped_and_stops_learning_above_the_clamp():
    emb = {v: torch.randn(6, 4, generator=torch.Generator().manual_seed(i)) for i, v in enumerate("ab")}
    obj = ClipObjective(max_logit_scale=50.0)
    with torch.no_grad():
        obj.logit_scale.fill_(math.log(200.0))
    out = obj(emb)
    assert float(out.parts["logit_scale"]) == pytest.approx(50.0)
    out.loss.backward()
    assert obj.logit_scale.grad is not None and float(obj.logit_scale.grad) == 0.0

    below = ClipObjective(max_logit_scale=50.0)
    below(emb).loss.backward()
    assert float(below.logit_scale.grad) != 0.0


def test_fixed_temperature_is_a_buffer():
    obj = ClipObjective(temperature=0.5, learn_temperature=False)
    assert not list(obj.parameters())
    assert "logit_scale" in obj.state_dict()
    assert float(obj.scale()) == pytest.approx(2.0)


def test_unique_groups_equal_plain_targets():
    emb = {v: torch.randn(5, 3, generator=torch.Generator().manual_seed(i)) for i, v in enumerate("ab")}
    obj = ClipObjective(positive_target="group")
    plain = obj(emb).loss
    torch.testing.assert_close(obj(emb, group=torch.tensor([0, 1, 2, -1, -1])).loss, plain)
    assert not torch.allclose(obj(emb, group=torch.tensor([0, 0, 1, 1, -1])).loss, plain)
    ignored = ClipObjective(positive_target=None)(emb, group=torch.tensor([0] * 5)).loss
    torch.testing.assert_close(ignored, plain)


@pytest.mark.parametrize("kwargs", [{"label_smoothing": 1.0}, {"temperature": 0.0}, {"max_logit_scale": -1}])
def test_bad_options_name_the_option(kwargs):
    with pytest.raises(ConfigError, match=next(iter(kwargs))):
        ClipObjective(**kwargs)


def test_registered_factory_builds_it():
    obj = scibind.create_objective("core/clip", pairs=[["text", "vector"]], temperature=0.1)
    assert isinstance(obj, ClipObjective)
    assert obj.pairs == [("text", "vector")]
