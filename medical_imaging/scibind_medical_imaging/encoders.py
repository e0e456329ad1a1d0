"""Encoders from MONAI networks: ResNet, DenseNet and ViT, in 3D (``ct_volume``) and 2D (``medical_image``).

Every encoder takes the modality's collated batch (``float32[B, C, *spatial]``), optionally augments it
while training (:class:`Augment`, applied on the device after collation, so eval is never augmented), and
returns ``float32[B, embed_dim]``. The ViT (patch tokens) and the ResNet (cells of the last feature map)
also have ``forward_tokens`` (``[B, N, width]``) for token-level objectives. Pretrained weights come only
from local safetensors files (or Hugging Face folders holding ``model.safetensors``); nothing is downloaded
and nothing is unpickled.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from scibind.errors import ConfigError, ShapeError
from torch import nn

__all__ = [
    "Augment",
    "DenseNetEncoder",
    "ResNetEncoder",
    "ViTEncoder",
    "load_weights",
    "tiny_resnet",
    "tiny_resnet_2d",
    "tiny_vit",
    "tiny_vit_2d",
]

RESNET_LAYERS: dict[int, tuple[str, list[int]]] = {
    10: ("basic", [1, 1, 1, 1]),
    18: ("basic", [2, 2, 2, 2]),
    34: ("basic", [3, 4, 6, 3]),
    50: ("bottleneck", [3, 4, 6, 3]),
}
MODALITY = {3: "ct_volume", 2: "medical_image"}


@dataclass(frozen=True)
class Augment:
    """Training-time augmentation on collated batches (each sample draws its own parameters).

    Attributes:
        flip_prob: Probability of flipping each axis in ``flip_axes``.
        flip_axes: Spatial axes (0-based, after the channel) that may flip. Do not flip the left-right axis
            when reports name the side.
        intensity_scale: Multiply intensities by ``1 + U(-s, s)``.
        intensity_shift: Add ``U(-s, s)``.
        noise_std: Add Gaussian noise of this standard deviation.
    """

    flip_prob: float = 0.0
    flip_axes: tuple[int, ...] = ()
    intensity_scale: float = 0.0
    intensity_shift: float = 0.0
    noise_std: float = 0.0

    @classmethod
    def from_config(cls, config: dict[str, Any] | None, spatial_dims: int) -> Augment | None:
        """Build from an ``augment:`` mapping of ``encoder_kwargs`` (``None``: no augmentation).

        Raises:
            ConfigError: Unknown key or an axis outside ``0..spatial_dims-1``.
        """
        if not config:
            return None
        unknown = sorted(set(config) - set(cls.__dataclass_fields__))
        if unknown:
            raise ConfigError(f"augment: unknown keys {unknown}; valid: {sorted(cls.__dataclass_fields__)}")
        out = cls(**{**config, "flip_axes": tuple(int(a) for a in config.get("flip_axes", ()))})
        if any(not 0 <= a < spatial_dims for a in out.flip_axes):
            raise ConfigError(f"augment.flip_axes {out.flip_axes}: axes must be in 0..{spatial_dims - 1}")
        return out

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Augment ``x`` ``[B, C, *spatial]``."""
        batch = x.shape[0]
        shape = (batch,) + (1,) * (x.dim() - 1)
        for axis in self.flip_axes:
            if self.flip_prob > 0:
                flip = (torch.rand(batch, device=x.device) < self.flip_prob).view(shape)
                x = torch.where(flip, x.flip(2 + axis), x)
        if self.intensity_scale > 0:
            x = x * (1 + (torch.rand(shape, device=x.device) * 2 - 1) * self.intensity_scale)
        if self.intensity_shift > 0:
            x = x + (torch.rand(shape, device=x.device) * 2 - 1) * self.intensity_shift
        if self.noise_std > 0:
            x = x + torch.randn_like(x) * self.noise_std
        return x


def load_weights(module: nn.Module, weights: str | Path, *, strict: bool = True) -> None:
    """Load a local safetensors file (or a folder holding ``model.safetensors``) into ``module``.

    A ``backbone.`` prefix (the layout this encoder saves) is accepted with or without the prefix.

    Raises:
        ConfigError: The file is missing, or its tensors do not fit the network (names the keys).
    """
    from safetensors.torch import load_file

    path = Path(weights).expanduser()
    if path.is_dir():
        path = path / "model.safetensors"
    if not path.is_file():
        raise ConfigError(
            f"weights file {path} not found; pass a local .safetensors file (nothing is downloaded)"
        )
    state = load_file(str(path))
    state = {k.removeprefix("backbone."): v for k, v in state.items()}
    missing, unexpected = module.load_state_dict(state, strict=False)
    if strict and (missing or unexpected):
        raise ConfigError(
            f"weights {path} do not fit the network: missing {sorted(missing)[:5]}, unexpected "
            f"{sorted(unexpected)[:5]}; check depth/widths/spatial_dims, or pass strict_weights: false"
        )


class _MonaiEncoder(nn.Module):
    """Shared input checks, augmentation and weight loading."""

    def __init__(self, spatial_dims: int, in_channels: int, augment: dict[str, Any] | None) -> None:
        super().__init__()
        if spatial_dims not in MODALITY:
            raise ConfigError(f"spatial_dims must be 2 or 3, got {spatial_dims}")
        self.spatial_dims = spatial_dims
        self.in_channels = in_channels
        self.modality = MODALITY[spatial_dims]
        self.augment = Augment.from_config(augment, spatial_dims)

    def _input(self, data: Any) -> torch.Tensor:
        if not isinstance(data, torch.Tensor) or data.dim() != self.spatial_dims + 2:
            got = tuple(data.shape) if isinstance(data, torch.Tensor) else type(data).__name__
            axes = "I, J, K" if self.spatial_dims == 3 else "H, W"
            raise ShapeError(
                f"{type(self).__name__} expects [B, {self.in_channels}, {axes}], got {got}; read "
                f"{self.modality} with a fixed roi_size/size so samples stack"
            )
        if data.shape[1] != self.in_channels:
            raise ShapeError(
                f"{type(self).__name__} expects {self.in_channels} channel(s), got {data.shape[1]}"
            )
        x = data.float()
        if self.training and self.augment is not None:
            x = self.augment(x)
        return x


class ResNetEncoder(_MonaiEncoder):
    """MONAI ``ResNet`` without its classifier: globally pooled features of the last stage.

    Args:
        depth: 10, 18, 34 or 50.
        spatial_dims: 3 (volumes) or 2 (radiographs, en-face images).
        in_channels: Input channels.
        widths: Channels of the four stages (default 64, 128, 256, 512); ``embed_dim`` is the last one
            (times 4 for depth 50).
        norm: MONAI norm spec; group norm (default) does not mix samples of a batch, ``"batch"`` matches
            MedicalNet-style pretrained weights.
        conv1_size: Kernel size of the stem convolution.
        conv1_stride: Stride of the stem convolution (2 halves every axis before the max pool).
        no_max_pool: Skip the stem's max pool (a finer final feature map: more tokens).
        weights: Local safetensors file or folder.
        strict_weights: Require every tensor to match.
        augment: :class:`Augment` options (training only).
    """

    def __init__(
        self,
        depth: int = 18,
        spatial_dims: int = 3,
        in_channels: int = 1,
        widths: Sequence[int] = (64, 128, 256, 512),
        norm: Any = ("group", {"num_groups": 8}),
        conv1_size: int = 7,
        conv1_stride: int = 2,
        no_max_pool: bool = False,
        weights: str | Path | None = None,
        strict_weights: bool = True,
        augment: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(spatial_dims, in_channels, augment)
        from monai.networks.nets import ResNet

        if depth not in RESNET_LAYERS:
            raise ConfigError(f"ResNet depth must be one of {sorted(RESNET_LAYERS)}, got {depth}")
        block, layers = RESNET_LAYERS[depth]
        self.backbone = ResNet(
            block=block,
            layers=layers,
            block_inplanes=list(widths),
            spatial_dims=spatial_dims,
            n_input_channels=in_channels,
            conv1_t_size=conv1_size,
            conv1_t_stride=conv1_stride,
            no_max_pool=no_max_pool,
            feed_forward=False,
            norm=tuple(norm) if isinstance(norm, list) else norm,
        )
        self.embed_dim = int(widths[-1]) * (4 if block == "bottleneck" else 1)
        if weights is not None:
            load_weights(self.backbone, weights, strict=strict_weights)

    def forward_tokens(self, data: torch.Tensor) -> torch.Tensor:
        """One token per cell of the last stage's feature map: ``[B, N, embed_dim]``.

        ``N`` is the product of the final grid (a 32^2 image with ``conv1_stride=1`` and ``no_max_pool``
        gives 4 x 4 = 16 cells). :meth:`forward` is the mean of these tokens (global average pooling).
        """
        net = self.backbone
        x = net.act(net.bn1(net.conv1(self._input(data))))
        if not net.no_max_pool:
            x = net.maxpool(x)
        x = net.layer4(net.layer3(net.layer2(net.layer1(x))))
        return x.flatten(2).transpose(1, 2)

    def forward(self, data: torch.Tensor) -> torch.Tensor:
        """Embed a batch ``[B, C, *spatial]`` -> ``[B, embed_dim]``."""
        return self.backbone(self._input(data)).flatten(1)


class DenseNetEncoder(_MonaiEncoder):
    """MONAI ``DenseNet`` (121 layout by default) whose final linear layer outputs ``embed_dim``.

    Args:
        embed_dim: Output width.
        spatial_dims: 3 or 2.
        in_channels: Input channels.
        init_features: Channels after the stem.
        growth_rate: Channels added per dense layer.
        block_config: Dense layers per block.
        weights: Local safetensors file or folder.
        strict_weights: Require every tensor to match.
        augment: :class:`Augment` options (training only).
    """

    def __init__(
        self,
        embed_dim: int = 512,
        spatial_dims: int = 3,
        in_channels: int = 1,
        init_features: int = 64,
        growth_rate: int = 32,
        block_config: Sequence[int] = (6, 12, 24, 16),
        weights: str | Path | None = None,
        strict_weights: bool = True,
        augment: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(spatial_dims, in_channels, augment)
        from monai.networks.nets import DenseNet

        self.backbone = DenseNet(
            spatial_dims=spatial_dims,
            in_channels=in_channels,
            out_channels=embed_dim,
            init_features=init_features,
            growth_rate=growth_rate,
            block_config=tuple(block_config),
        )
        self.embed_dim = embed_dim
        if weights is not None:
            load_weights(self.backbone, weights, strict=strict_weights)

    def forward(self, data: torch.Tensor) -> torch.Tensor:
        """Embed a batch ``[B, C, *spatial]`` -> ``[B, embed_dim]``."""
        return self.backbone(self._input(data))


class ViTEncoder(_MonaiEncoder):
    """MONAI ``ViT``: patch tokens (``forward_tokens``) and their mean (``forward``).

    Args:
        img_size: Input size in voxels (the reader's ``roi_size`` / ``size``).
        patch_size: Patch size in voxels.
        hidden_size: Token width (= ``embed_dim``).
        mlp_dim: Width of the transformer MLPs.
        num_layers: Transformer blocks.
        num_heads: Attention heads.
        spatial_dims: 3 or 2.
        in_channels: Input channels.
        weights: Local safetensors file or folder.
        strict_weights: Require every tensor to match.
        augment: :class:`Augment` options (training only).
    """

    def __init__(
        self,
        img_size: Sequence[int] | int = 96,
        patch_size: Sequence[int] | int = 16,
        hidden_size: int = 768,
        mlp_dim: int = 3072,
        num_layers: int = 12,
        num_heads: int = 12,
        spatial_dims: int = 3,
        in_channels: int = 1,
        weights: str | Path | None = None,
        strict_weights: bool = True,
        augment: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(spatial_dims, in_channels, augment)
        from monai.networks.nets import ViT

        self.backbone = ViT(
            in_channels=in_channels,
            img_size=img_size,
            patch_size=patch_size,
            hidden_size=hidden_size,
            mlp_dim=mlp_dim,
            num_layers=num_layers,
            num_heads=num_heads,
            spatial_dims=spatial_dims,
            classification=False,
        )
        self.embed_dim = hidden_size
        if weights is not None:
            load_weights(self.backbone, weights, strict=strict_weights)

    def forward_tokens(self, data: torch.Tensor) -> torch.Tensor:
        """Patch tokens ``[B, N, hidden_size]`` (``N`` = number of patches)."""
        tokens, _ = self.backbone(self._input(data))
        return tokens

    def forward(self, data: torch.Tensor) -> torch.Tensor:
        """Mean of the patch tokens ``[B, hidden_size]``."""
        return self.forward_tokens(data).mean(dim=1)

    def forward_with_tokens(self, data: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`forward` and :meth:`forward_tokens` from one pass of the transformer."""
        tokens = self.forward_tokens(data)
        return tokens.mean(dim=1), tokens


def tiny_resnet(spatial_dims: int = 3, augment: dict[str, Any] | None = None, **kwargs: Any) -> ResNetEncoder:
    """A ResNet-10 with widths 8-16-32-64 and a 3-voxel stem (``embed_dim`` 64), for tests and demos."""
    kwargs.setdefault("widths", (8, 16, 32, 64))
    kwargs.setdefault("conv1_size", 3)
    kwargs.setdefault("norm", ("group", {"num_groups": 4}))
    return ResNetEncoder(depth=10, spatial_dims=spatial_dims, augment=augment, **kwargs)


def tiny_resnet_2d(augment: dict[str, Any] | None = None, **kwargs: Any) -> ResNetEncoder:
    """:func:`tiny_resnet` for 2D images (``medical_image``)."""
    return tiny_resnet(spatial_dims=2, augment=augment, **kwargs)


def tiny_vit(spatial_dims: int = 3, img_size: Sequence[int] | int = 32, **kwargs: Any) -> ViTEncoder:
    """A 2-layer ViT (hidden 64, 4 heads, patch 8, input 32): ``forward_tokens`` for tests."""
    defaults = {"patch_size": 8, "hidden_size": 64, "mlp_dim": 128, "num_layers": 2, "num_heads": 4}
    return ViTEncoder(img_size=img_size, spatial_dims=spatial_dims, **{**defaults, **kwargs})


def tiny_vit_2d(img_size: Sequence[int] | int = 32, **kwargs: Any) -> ViTEncoder:
    """:func:`tiny_vit` for 2D images."""
    return tiny_vit(spatial_dims=2, img_size=img_size, **kwargs)


def resnet_2d(**kwargs: Any) -> ResNetEncoder:
    """:class:`ResNetEncoder` for 2D images (``medical_image``)."""
    return ResNetEncoder(spatial_dims=2, **kwargs)


def densenet_2d(**kwargs: Any) -> DenseNetEncoder:
    """:class:`DenseNetEncoder` for 2D images."""
    return DenseNetEncoder(spatial_dims=2, **kwargs)


def vit_2d(img_size: Sequence[int] | int = 224, **kwargs: Any) -> ViTEncoder:
    """:class:`ViTEncoder` for 2D images (default 224 px, patch 16)."""
    return ViTEncoder(img_size=img_size, spatial_dims=2, **kwargs)
