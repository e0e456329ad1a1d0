from __future__ import annotations

import pytest
import scibind
import torch
from safetensors.torch import save_file
from scibind.builtin.image_encoders import CNNEncoder, tiny_cnn
from scibind.builtin.text_encoders import MiniLMEncoder, TinyTextEncoder
from scibind.builtin.vector_encoders import MLPEncoder, tiny_mlp
from scibind.errors import CheckpointError, ConfigError, DataError, ShapeError

CORE_ENCODERS = {
    "core/tiny-text": ({}, ["a cat", "", "ünïcode ✓"]),
    "core/mlp": ({"in_dim": 7}, torch.randn(3, 7)),
    "core/tiny-mlp": ({"in_dim": 7}, torch.randn(3, 7)),
    "core/cnn": ({}, torch.randn(3, 3, 20, 20)),
    "core/tiny-cnn": ({}, torch.randn(3, 3, 9, 11)),
}


@pytest.mark.parametrize("name", sorted(CORE_ENCODERS))
def test_registered_encoders_fit_their_spec(name):
    kwargs, data = CORE_ENCODERS[name]
    spec = scibind.get_spec("encoders", name)
    torch.manual_seed(0)
    encoder = scibind.create_encoder(name, **kwargs).eval()
    assert encoder.modality == spec.modality and encoder.embed_dim == spec.embed_dim
    out = encoder(data)
    assert out.shape == (3, spec.embed_dim) and out.dtype == torch.float32
    assert torch.isfinite(out).all()
    torch.testing.assert_close(encoder(data), out, rtol=0, atol=0)
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in encoder.modules())


def test_tiny_text_hashes_are_stable_across_processes_and_seeds():
    # crc32, not hash(): these numbers must never change (PYTHONHASHSEED would change hash()).
    assert TinyTextEncoder().buckets("ab") == [3745, 3651, 4089, 3639, 435, 2157, 2656, 2030, 154]
    torch.manual_seed(1)
    a = TinyTextEncoder(embed_dim=8)
    torch.manual_seed(1)
    b = TinyTextEncoder(embed_dim=8)
    torch.testing.assert_close(a(["same text", "x"]), b(["same text", "x"]))
    assert a([]).shape == (0, 8)


@pytest.mark.parametrize("bad", ["one string", ["ok", 3], torch.zeros(2)])
def test_tiny_text_rejects_non_string_batches(bad):
    with pytest.raises(DataError, match="tiny-text"):
        TinyTextEncoder()(bad)


def test_mlp_in_dim_mismatch_names_the_option():
    with pytest.raises(ShapeError, match=r"in_dim=7.*got \(2, 5\).*encoder_kwargs.in_dim"):
        MLPEncoder(7)(torch.randn(2, 5))
    with pytest.raises(ShapeError, match="in_dim"):
        tiny_mlp(7)(torch.randn(7))


@pytest.mark.parametrize("kwargs", [{"n_layers": 0}, {"hidden_dim": -1}, {"dropout": 1.5}, {"embed_dim": 0}])
def test_mlp_bad_options(kwargs):
    with pytest.raises(ConfigError, match=next(iter(kwargs))):
        MLPEncoder(4, **kwargs)


def test_mlp_layers_and_dtype():
    assert sum(isinstance(m, torch.nn.Linear) for m in MLPEncoder(4, n_layers=3).modules()) == 3
    assert MLPEncoder(4, n_layers=1)(torch.randn(2, 4, dtype=torch.float64)).dtype == torch.float32


@pytest.mark.parametrize("channels", [1, 5])
def test_cnn_any_channels_any_size_and_tokens(channels):
    encoder = CNNEncoder(in_channels=channels, embed_dim=12, width=4, depth=2)
    x = torch.randn(2, channels, 13, 17)
    out = encoder(x)
    tokens = encoder.forward_tokens(x)
    assert out.shape == (2, 12) and tokens.shape == (2, 4 * 5, 12)
    torch.testing.assert_close(tokens.mean(dim=1), out)
    pooled, same_tokens = encoder.forward_with_tokens(x)
    torch.testing.assert_close(pooled, out)
    torch.testing.assert_close(same_tokens, tokens)
    assert tiny_cnn(channels)(torch.randn(1, channels, 1, 1)).shape == (1, 32)


def test_cnn_channel_mismatch_is_a_shape_error():
    with pytest.raises(ShapeError, match=r"in_channels=3.*got \(2, 4, 8, 8\)"):
        tiny_cnn()(torch.randn(2, 4, 8, 8))
    with pytest.raises(ShapeError, match="in_channels"):
        tiny_cnn()(torch.randn(3, 8, 8))


def test_cnn_weights_round_trip_through_safetensors(tmp_path):
    torch.manual_seed(0)
    source = CNNEncoder(in_channels=2, embed_dim=8, width=4, depth=2)
    path = source.save_weights(tmp_path / "cnn.safetensors")
    torch.manual_seed(1)
    loaded = CNNEncoder(in_channels=2, embed_dim=8, width=4, depth=2, weights=path)
    x = torch.randn(3, 2, 10, 10)
    torch.testing.assert_close(loaded(x), source(x))


def test_cnn_loads_a_backbone_only_file(tmp_path):
    torch.manual_seed(0)
    source = CNNEncoder(in_channels=2, embed_dim=8, width=4, depth=1)
    backbone = {k: v for k, v in source.state_dict().items() if k.startswith("backbone.")}
    save_file(backbone, str(tmp_path / "backbone.safetensors"))
    path = tmp_path / "backbone.safetensors"
    loaded = CNNEncoder(in_channels=2, embed_dim=16, width=4, depth=1, weights=path)
    x = torch.randn(1, 2, 6, 6)
    torch.testing.assert_close(loaded.backbone(x), source.backbone(x))


def test_cnn_mismatched_weights_list_the_keys(tmp_path):
    path = CNNEncoder(in_channels=2, width=4, depth=1).save_weights(tmp_path / "small.safetensors")
    with pytest.raises(CheckpointError, match=r"missing \d+ keys \(e.g. \['backbone.4"):
        CNNEncoder(in_channels=2, width=4, depth=2, weights=path)
    with pytest.raises(CheckpointError, match="wrong shape of"):
        CNNEncoder(in_channels=3, width=4, depth=1, weights=path)
    save_file({"conv.weight": torch.zeros(1)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(CheckpointError, match=r"unexpected 1 keys \(e.g. \['conv.weight'\]\)"):
        CNNEncoder(weights=tmp_path / "other.safetensors")


def test_cnn_refuses_pickles_and_missing_files(tmp_path):
    (tmp_path / "w.pt").write_bytes(b"not read")
    with pytest.raises(ConfigError, match="never unpickles"):
        CNNEncoder(weights=tmp_path / "w.pt")
    with pytest.raises(ConfigError, match="does not exist"):
        CNNEncoder(weights=tmp_path / "nope.safetensors")
    (tmp_path / "bad.safetensors").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match=r"bad\.safetensors"):
        CNNEncoder(weights=tmp_path / "bad.safetensors")


@pytest.fixture(scope="module")
def minilm() -> MiniLMEncoder:
    return MiniLMEncoder()


@pytest.mark.slow
def test_minilm_embeds_meaning(minilm):
    z = torch.nn.functional.normalize(minilm(["a cat", "a kitten", "quantum chromodynamics"]), dim=-1)
    assert z.shape == (3, 384) and minilm.embed_dim == 384
    assert float(z[0] @ z[1]) > float(z[0] @ z[2]) + 0.2


@pytest.mark.slow
def test_minilm_pooled_and_tokens_from_one_pass(minilm):
    texts = ["a cat", "a much longer sentence about a kitten"]
    pooled, tokens = minilm.forward_with_tokens(texts)
    torch.testing.assert_close(pooled, minilm(texts))
    torch.testing.assert_close(tokens, minilm.forward_tokens(texts))
    mask = minilm.token_mask(texts)
    assert tokens.shape[:2] == mask.shape and not mask[0].all() and mask[1].all()
    # mean pooling is the mean of the real tokens
    torch.testing.assert_close(pooled[0], tokens[0][mask[0]].mean(0))


@pytest.mark.slow
def test_minilm_freeze_really_freezes(minilm):
    minilm.train()
    assert not minilm.model.training
    assert not any(p.requires_grad for p in minilm.parameters())
    texts = ["dropout would make these differ", "a second sentence"]
    out = minilm(texts)
    assert not out.requires_grad
    torch.testing.assert_close(minilm(texts), out, rtol=0, atol=0)


@pytest.mark.slow
def test_minilm_fine_tuning_gets_gradients():
    encoder = MiniLMEncoder(freeze=False, max_length=8, pooling="cls")
    encoder(["a long sentence that is truncated at eight tokens"]).sum().backward()
    assert all(p.grad is not None for p in encoder.model.encoder.layer[-1].parameters())


def test_minilm_bad_pooling_fails_before_loading():
    with pytest.raises(ConfigError, match="pooling"):
        MiniLMEncoder(pooling="max")
