from __future__ import annotations

import math

import pytest
import torch
from scibind import create_head
from scibind.evaluate.context import EvalContext
from scibind.evaluate.geometry import GeometryTask, alignment, modality_gap, uniformity


def test_gap_and_alignment_by_hand() -> None:
    a = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    b = torch.tensor([[0.0, 1.0], [0.0, 1.0]])
    assert modality_gap(a, b) == pytest.approx(math.sqrt(2))
    assert alignment(a, b) == pytest.approx(2.0)
    swapped = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    assert modality_gap(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), swapped) == pytest.approx(0.0)
    assert alignment(a, a) == 0.0


def test_uniformity_by_hand_and_chunked() -> None:
    assert uniformity(torch.tensor([[1.0, 0.0], [-1.0, 0.0]])) == pytest.approx(-8.0)
    three = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])  # squared distances 2, 4, 2
    assert uniformity(three) == pytest.approx(math.log((2 * math.exp(-4) + math.exp(-8)) / 3))
    x = torch.nn.functional.normalize(torch.randn(37, 5, generator=torch.Generator().manual_seed(1)), dim=1)
    d2 = torch.cdist(x.double(), x.double()).pow(2)
    iu = torch.triu_indices(37, 37, 1)
    expected = float(torch.exp(-2 * d2[iu[0], iu[1]]).mean().log())
    assert uniformity(x, chunk_size=4) == pytest.approx(expected)


def test_task_keys_use_paired_records_only() -> None:
    ctx = EvalContext(
        ids=["0", "1", "2"],
        embeddings={
            "a": torch.tensor([[1.0, 0.0], [1.0, 0.0], [-1.0, 0.0]]),
            "b": torch.tensor([[0.0, 1.0], [0.0, 1.0], [0.0, 0.0]]),
        },
        present={"a": torch.tensor([True, True, True]), "b": torch.tensor([True, True, False])},
        labels={},
    )
    out = GeometryTask()(ctx)
    assert out["geometry/a,b/gap"] == pytest.approx(math.sqrt(2))
    assert out["geometry/a,b/alignment"] == pytest.approx(2.0)
    assert out["geometry/a/uniformity"] == pytest.approx(math.log((2 * math.exp(-8) + 1) / 3))
    assert out["geometry/b/uniformity"] == pytest.approx(0.0)
    sub = create_head("core/geometry", max_samples=2, seed=3)(ctx)
    assert set(sub) == set(out)
