from __future__ import annotations

import itertools
import math

import pytest
from scibind.train.schedule import lr_at


def test_warmup_is_linear_from_zero_to_peak():
    lrs = [lr_at(s, base_lr=1.0, max_steps=100, warmup_steps=4) for s in range(4)]
    assert lrs == pytest.approx([0.25, 0.5, 0.75, 1.0])


def test_cosine_decays_to_min_ratio():
    kw = dict(base_lr=2.0, max_steps=110, warmup_steps=10, min_lr_ratio=0.1)
    assert lr_at(10, **kw) == pytest.approx(2.0)
    assert lr_at(60, **kw) == pytest.approx(2.0 * (0.1 + 0.9 * 0.5))
    assert lr_at(110, **kw) == pytest.approx(0.2)
    assert lr_at(500, **kw) == pytest.approx(0.2)
    values = [lr_at(s, **kw) for s in range(10, 111)]
    assert all(a >= b for a, b in itertools.pairwise(values))


def test_constant_after_warmup_and_pure_function_of_step():
    assert lr_at(50, base_lr=0.5, max_steps=100, warmup_steps=2, schedule="constant") == 0.5
    assert lr_at(37, base_lr=1.0, max_steps=80) == lr_at(37, base_lr=1.0, max_steps=80)
    assert lr_at(0, base_lr=1.0, max_steps=80) == pytest.approx(1.0)
    assert math.isclose(lr_at(40, base_lr=1.0, max_steps=80), 0.5)
