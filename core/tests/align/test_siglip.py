from __future__ import annotations

import math

import pytest
import scibind
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from scibind.align.siglip import SigLipObjective
from scibind.errors import ConfigError

from .reference import assert_close_all, cases, grads, objective_inputs, ref_siglip, resolved_pairs


@settings(max_examples=40, deadline=None)
@given(case=cases(), log_scale=st.floats(0.0, 5.5), bias=st.floats(-12.0, 3.0))
def test_value_and_gradients_match_naive_reference(case, log_scale, bias):
    obj = SigLipObjective(pairs=case["pairs"], positive_target="group").double()
    with torch.no_grad():
        obj.logit_scale.fill_(log_scale)
        obj.logit_bias.fill_(bias)
    emb, present, targets = objective_inputs(case)
    out = obj(emb, present, **targets)
    ref = (
        ref_siglip(
            emb, case["present"], case["groups"], resolved_pairs(case), obj.logit_scale, obj.logit_bias
        )
        + 0 * obj.logit_scale
    )
    torch.testing.assert_close(out.loss, ref, rtol=1e-9, atol=1e-10)
    params = [*emb.values(), obj.logit_scale, obj.logit_bias]
    assert_close_all(grads(out.loss, params), grads(ref, params))


def open_clip_siglip(image, text, logit_scale, logit_bias):
    # open_clip SigLipLoss (world_size 1): labels +1 on the diagonal, -1 elsewhere; sum / batch size.
    logits = logit_scale * image @ text.T + logit_bias
    labels = 2 * torch.eye(image.shape[0], dtype=image.dtype) - 1
    return -F.logsigmoid(labels * logits).sum() / image.shape[0]


def test_equals_open_clip_formula_at_full_presence_and_paper_init():
    gen = torch.Generator().manual_seed(0)
    image = F.normalize(torch.randn(16, 8, generator=gen, dtype=torch.float64), dim=-1)
    text = F.normalize(torch.randn(16, 8, generator=gen, dtype=torch.float64), dim=-1)
    obj = SigLipObjective(pairs=[("image", "text")]).double()
    assert float(obj.logit_scale) == pytest.approx(math.log(10.0))
    assert float(obj.logit_bias) == -10.0
    out = obj({"image": image, "text": text})
    torch.testing.assert_close(out.loss, open_clip_siglip(image, text, 10.0, -10.0))
    assert set(out.parts) == {"image<->text", "logit_scale", "temperature", "bias"}


def test_fixed_bias_and_temperature_are_buffers():
    obj = SigLipObjective(learn_temperature=False, learn_bias=False, bias=-5.0)
    assert not list(obj.parameters())
    assert set(obj.state_dict()) == {"logit_scale", "logit_bias"}
    assert float(obj.logit_bias) == -5.0


def test_bias_gets_gradient_and_clamp_applies():
    emb = {v: torch.randn(6, 4, generator=torch.Generator().manual_seed(i)) for i, v in enumerate("ab")}
    obj = SigLipObjective(max_logit_scale=20.0)
    with torch.no_grad():
        obj.logit_scale.fill_(math.log(40.0))
    out = obj(emb)
    out.loss.backward()
    assert float(out.parts["logit_scale"]) == pytest.approx(20.0)
    assert float(obj.logit_scale.grad) == 0.0
    assert float(obj.logit_bias.grad) != 0.0


def test_bad_bias_is_a_config_error():
    with pytest.raises(ConfigError, match="bias"):
        SigLipObjective(bias=float("nan"))


def test_registered_factory_builds_it():
    assert isinstance(scibind.create_objective("core/siglip"), SigLipObjective)
