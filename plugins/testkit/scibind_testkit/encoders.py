"""The encoder contract: ``[n, embed_dim]`` float32 output, deterministic in eval mode, spec = module."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
from scibind.registry import EncoderSpec, Registry

from scibind_testkit.imports import assert_light

__all__ = ["EncoderContract"]


class EncoderContract:
    """Subclass as ``TestMyEncoder(EncoderContract)``, set :attr:`encoder_name` and give an input.

    Either implement :meth:`make_samples` (sample ``data`` values, collated with the modality's collate)
    or override the ``encoder_input`` fixture with an already collated batch of :attr:`batch_size` items.

    Attributes:
        encoder_name: The registered encoder, e.g. ``"core/tiny-mlp"``.
        encoder_kwargs: Options passed to ``scibind.create_encoder``.
        batch_size: Number of samples in the test batch.
    """

    encoder_name: ClassVar[str] = ""
    encoder_kwargs: ClassVar[dict[str, Any]] = {}
    batch_size: ClassVar[int] = 4

    def make_samples(self, n: int) -> list[Any]:
        """Return ``n`` sample ``data`` values of the encoder's modality (as its reader produces them)."""
        raise NotImplementedError(f"{type(self).__name__} must implement make_samples(n) or encoder_input")

    @pytest.fixture
    def encoder_spec(self, scibind_registry: Registry) -> EncoderSpec:
        """The registered spec of :attr:`encoder_name`."""
        assert self.encoder_name, f"{type(self).__name__}: set encoder_name"
        return scibind_registry.get("encoders", self.encoder_name)

    @pytest.fixture
    def encoder(self, encoder_spec: EncoderSpec) -> Any:
        """The encoder built through ``scibind.create_encoder``, in eval mode, with a fixed seed."""
        import scibind
        import torch

        torch.manual_seed(0)
        return scibind.create_encoder(encoder_spec.name, **self.encoder_kwargs).eval()

    @pytest.fixture
    def encoder_input(self, encoder_spec: EncoderSpec) -> Any:
        """A collated batch of :attr:`batch_size` samples."""
        from scibind.data.collate import collate_for_modality

        return collate_for_modality(encoder_spec.modality)(self.make_samples(self.batch_size))

    def test_spec_matches_module(self, encoder: Any, encoder_spec: EncoderSpec):
        """Contract: spec matches module."""
        import torch

        assert isinstance(encoder, torch.nn.Module)
        assert encoder.embed_dim == encoder_spec.embed_dim, "spec embed_dim must equal the module's embed_dim"
        assert encoder.modality == encoder_spec.modality

    def test_output_shape_and_dtype(self, encoder: Any, encoder_spec: EncoderSpec, encoder_input: Any):
        """Contract: output shape and dtype."""
        import torch

        with torch.no_grad():
            out = encoder(encoder_input)
        assert isinstance(out, torch.Tensor)
        assert tuple(out.shape) == (self.batch_size, encoder_spec.embed_dim)
        assert out.dtype == torch.float32
        assert torch.isfinite(out).all()

    def test_deterministic_in_eval_mode(self, encoder: Any, encoder_input: Any):
        """Contract: deterministic in eval mode."""
        import torch

        with torch.no_grad():
            first, second = encoder(encoder_input), encoder(encoder_input)
        torch.testing.assert_close(first, second, rtol=0, atol=0)

    def test_distinct_samples_embed_differently(self, encoder: Any, encoder_input: Any):
        """Contract: distinct samples embed differently."""
        import torch

        with torch.no_grad():
            out = encoder(encoder_input)
        if self.batch_size < 2:
            pytest.skip("needs batch_size >= 2")
        assert not torch.allclose(out[0], out[1]), "different samples should not embed identically"

    def test_tokens_match_the_pooled_path(self, encoder: Any, encoder_input: Any):
        """Contract: tokens are ``[n, T, width]``; ``forward_with_tokens`` equals the two separate passes.

        Also: ``token_mask``, where present, is ``bool[n, T]``.
        """
        import torch

        if not callable(getattr(encoder, "forward_tokens", None)):
            pytest.skip("the encoder has no forward_tokens")
        with torch.no_grad():
            tokens = encoder.forward_tokens(encoder_input)
            assert tokens.dim() == 3 and tokens.shape[0] == self.batch_size, tuple(tokens.shape)
            if callable(getattr(encoder, "token_mask", None)):
                mask = torch.as_tensor(encoder.token_mask(encoder_input))
                assert mask.dtype == torch.bool and tuple(mask.shape) == tuple(tokens.shape[:2])
            if not callable(getattr(encoder, "forward_with_tokens", None)):
                return
            pooled, same_tokens = encoder.forward_with_tokens(encoder_input)
            torch.testing.assert_close(pooled, encoder(encoder_input))
            torch.testing.assert_close(same_tokens, tokens)

    def test_plugin_module_imports_no_heavy_library(self, encoder_spec: EncoderSpec):
        """Contract: plugin module imports no heavy library."""
        assert_light(encoder_spec.plugin)
