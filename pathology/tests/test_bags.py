"""Slide bags: padding-safe pooling, attention, heatmaps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scibind.errors import ShapeError
from scibind_pathology.bags import ABMILEncoder, PrototypeEncoder, collate_bags
from scibind_pathology.heatmap import attention_heatmap


@pytest.mark.parametrize("cls", [ABMILEncoder, PrototypeEncoder])
def test_padding_does_not_change_a_slide_embedding(cls):
    torch.manual_seed(0)
    encoder = cls(in_dim=8, embed_dim=4, hidden_dim=8).eval()
    small, large = torch.randn(3, 8), torch.randn(11, 8)
    alone = encoder(collate_bags([{"features": small}]))
    batched = encoder(collate_bags([{"features": small}, {"features": large}]))
    torch.testing.assert_close(batched[0], alone[0], atol=1e-5, rtol=1e-5)
    weights = encoder.attention(collate_bags([{"features": small}, {"features": large}]))
    assert weights[0, 3:].abs().max() == 0
    torch.testing.assert_close(weights.sum(dim=1), torch.ones(2), atol=1e-5, rtol=0)


def test_abmil_attends_to_the_informative_tile():
    torch.manual_seed(0)
    encoder = ABMILEncoder(in_dim=4, embed_dim=2, hidden_dim=16)
    opt = torch.optim.Adam(encoder.parameters(), lr=0.01)
    gen = torch.Generator().manual_seed(0)
    for _ in range(150):  # a bag is positive iff one of its tiles carries a spike in feature 0
        feats = torch.randn(16, 10, 4, generator=gen) * 0.1
        labels = torch.arange(16) % 2
        feats[labels == 1, 0, 0] = 3.0
        loss = torch.nn.functional.cross_entropy(encoder({"features": feats}), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    feats = torch.randn(1, 10, 4) * 0.1
    feats[0, 7, 0] = 3.0
    assert encoder.attention({"features": feats})[0].argmax().item() == 7


def test_collate_rejects_mixed_widths_and_empty_bags():
    with pytest.raises(ShapeError, match="same tile encoder"):
        collate_bags([{"features": torch.zeros(2, 4)}, {"features": torch.zeros(2, 5)}])
    with pytest.raises(ShapeError, match="no tiles"):
        collate_bags([{"features": torch.zeros(0, 4)}])


def test_heatmap_png_over_thumbnail(cmu_slide: Path, tmp_path: Path):
    coords = np.array([[0, 0], [1024, 2048]])
    out = attention_heatmap(cmu_slide, coords, np.array([0.1, 0.9]), 512, tmp_path / "heat.png", max_side=300)
    image = np.asarray(Image.open(out))
    assert image.shape[:2] == (300, round(2220 * 300 / 2967))
    hot = image[int(2048 * 300 / 2967) + 5, int(1024 * 300 / 2967) + 5]
    cold = image[5, 5]
    assert hot[0] > hot[2] and cold[2] > cold[0]  # red where attention is high, blue where low
