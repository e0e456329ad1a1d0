"""The channel-wise encoder: padded channel slots of a batch count for nothing."""

from __future__ import annotations

import pytest
import torch
from scibind.align.model import Tower
from scibind.errors import ShapeError
from scibind_cell_painting.collate import collate_fields
from scibind_cell_painting.encoder import ChannelwiseEncoder


def _encoder(seed: int = 0) -> ChannelwiseEncoder:
    torch.manual_seed(seed)
    encoder = ChannelwiseEncoder(embed_dim=24, token_dim=16, width=8, depth=1, n_heads=2)
    # Non-trivial query and channel embeddings, so padding would shift the attention if it leaked.
    with torch.no_grad():
        encoder.query.normal_()
        encoder.channel_embedding.weight.normal_()
    return encoder.eval()


def _field(channels: list[int], seed: int, size: int = 16) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {
        "pixels": torch.rand(len(channels), size, size, generator=gen),
        "channels": torch.tensor(channels),
    }


def test_a_field_embeds_the_same_alone_and_padded_next_to_a_field_with_more_channels():
    encoder = _encoder()
    small = _field([0, 4], seed=1)  # DNA, Mito
    big = _field([0, 1, 2, 3, 4], seed=2)  # all five stains
    alone = collate_fields([small])
    padded = collate_fields([small, big])
    assert padded["mask"].tolist() == [[True, True, False, False, False], [True] * 5]
    with torch.no_grad():
        z_alone = encoder(alone)[0]
        z_batch = encoder(padded)
        z_big = encoder(collate_fields([big]))[0]
    torch.testing.assert_close(z_batch[0], z_alone, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(z_batch[1], z_big, atol=1e-5, rtol=1e-5)
    # The padded planes are zeros with channel id 0 (DNA): unmasked, they would read as a second, empty DNA
    # plane and change the embedding, which is what the mask prevents.
    unmasked = {**padded, "mask": torch.ones_like(padded["mask"])}
    with torch.no_grad():
        assert (encoder(unmasked)[0] - z_alone).abs().max() > 1e-3


def test_token_mask_marks_padding_and_padded_tokens_are_zero():
    encoder = _encoder()
    small, big = _field([2, 0], seed=3), _field([0, 1, 2, 3, 4], seed=4)
    batch = collate_fields([small, big])
    with torch.no_grad():
        tokens = encoder.forward_tokens(batch)
        alone = encoder.forward_tokens(collate_fields([small]))
    mask = encoder.token_mask(batch)
    assert mask.dtype == torch.bool and mask.tolist() == [[True, True, False, False, False], [True] * 5]
    assert tokens.shape == (2, 5, 24)
    assert torch.all(tokens[0, 2:] == 0) and torch.all(tokens[0, :2].abs().sum(-1) > 0)
    torch.testing.assert_close(tokens[0, :2], alone[0], atol=1e-5, rtol=1e-5)
    # The core's tower reads the encoder's mask, so token-level objectives skip the padded slots.
    tower = Tower(encoder, embed_dim=8).eval()
    with torch.no_grad():
        projected, tower_mask = tower.forward_tokens(batch)
    assert tower_mask.tolist() == mask.tolist() and torch.all(projected[0, 2:] == 0)


def test_channel_dropout_keeps_padding_out_while_training():
    torch.manual_seed(0)
    encoder = ChannelwiseEncoder(embed_dim=8, token_dim=8, width=4, depth=1, n_heads=2, channel_dropout=0.9)
    batch = collate_fields([_field([3], seed=5), _field([0, 1, 2, 3, 4], seed=6)])
    encoder.train()
    out = encoder(batch)
    assert torch.isfinite(out).all()  # the one-channel field keeps its only channel, never a padded slot


@pytest.mark.parametrize(
    "mask",
    [torch.ones(2, 3, dtype=torch.bool), torch.tensor([[True, False], [False, False]])],
    ids=["wrong-shape", "field-without-channels"],
)
def test_a_bad_mask_is_a_shape_error(mask):
    batch = collate_fields([_field([0, 1], seed=7), _field([0, 1], seed=8)])
    with pytest.raises(ShapeError):
        _encoder()({**batch, "mask": mask})
