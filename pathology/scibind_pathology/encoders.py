"""Tile encoders (modality ``wsi_tile``): RGB tiles ``float[B, 3, H, W]`` in ``[0, 1]`` -> ``[B, embed_dim]``.

Every encoder is a :class:`TileEncoder`: a backbone plus its declared preprocessing (per-channel
``mean``/``std``, the input size in pixels and the µm/px it was trained at), applied inside ``forward`` so a
tile is normalised the same way in training, feature extraction and evaluation. Backbones: a residual CNN
(the core's :class:`~scibind.builtin.image_encoders.CNNEncoder`), a small pure-torch ViT, or any user
architecture loaded from local safetensors by :func:`pretrained`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from scibind.errors import CheckpointError, ConfigError, ShapeError
from torch import nn

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "TileEncoder",
    "TileViT",
    "pretrained",
    "tile_cnn",
    "tile_vit",
    "tiny",
    "tiny_vit",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class TileEncoder(nn.Module):
    """A backbone with its preprocessing: resize to ``input_size``, then ``(x - mean) / std``.

    Args:
        backbone: ``nn.Module`` mapping normalised ``[B, 3, S, S]`` to ``[B, embed_dim]``.
        embed_dim: The backbone's output width.
        mean: Per-channel mean of the normalisation.
        std: Per-channel standard deviation.
        input_size: Side the tiles are resized to (``None``: any size is passed through).
        input_mpp: µm/px the backbone expects; feature extraction refuses tiles of another scale.

    Attributes:
        modality: ``"wsi_tile"``.
    """

    modality = "wsi_tile"

    def __init__(
        self,
        backbone: nn.Module,
        embed_dim: int,
        *,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        input_size: int | None = None,
        input_mpp: float | None = None,
    ) -> None:
        super().__init__()
        if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
            raise ConfigError(f"mean and std need 3 values (RGB) with std > 0, got mean={mean} std={std}")
        self.backbone = backbone
        self.embed_dim = int(embed_dim)
        self.input_size = input_size
        self.input_mpp = input_mpp
        self.register_buffer(
            "mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False
        )
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)

    def preprocessing(self) -> dict[str, Any]:
        """The declared preprocessing (recorded in feature caches and their keys)."""
        return {
            "mean": [round(float(v), 6) for v in self.mean.flatten()],
            "std": [round(float(v), 6) for v in self.std.flatten()],
            "input_size": self.input_size,
            "input_mpp": self.input_mpp,
        }

    def forward(self, data: torch.Tensor) -> torch.Tensor:
        """Embed tiles.

        Args:
            data: ``float[B, 3, H, W]`` RGB in ``[0, 1]`` (``uint8`` is scaled).

        Returns:
            ``float32[B, embed_dim]``.

        Raises:
            ShapeError: ``data`` is not a batch of RGB tiles.
        """
        if not isinstance(data, torch.Tensor) or data.dim() != 4 or data.shape[1] != 3:
            got = tuple(data.shape) if isinstance(data, torch.Tensor) else type(data).__name__
            raise ShapeError(f"tile encoders expect RGB tiles [B, 3, H, W], got {got}")
        x = data.float() / 255.0 if data.dtype == torch.uint8 else data.float()
        x = x.to(self.mean.device)
        if self.input_size is not None and tuple(x.shape[-2:]) != (self.input_size, self.input_size):
            x = nn.functional.interpolate(
                x,
                size=(self.input_size, self.input_size),
                mode="bilinear",
                antialias=True,
                align_corners=False,
            )
        return self.backbone((x - self.mean) / self.std).float()


def tile_cnn(
    embed_dim: int = 256,
    width: int = 32,
    depth: int = 4,
    weights: str | os.PathLike[str] | None = None,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    input_size: int | None = None,
    input_mpp: float | None = None,
) -> TileEncoder:
    """A residual CNN (the core's ``CNNEncoder``, GroupNorm) on RGB tiles; trainable from scratch.

    Args:
        embed_dim: Output width.
        width: Channels of the stem (doubling at each of ``depth`` stages).
        depth: Residual stages (each halves H and W).
        weights: A ``.safetensors`` file of the CNN (``backbone.*`` keys, as ``CNNEncoder.save_weights``).
        mean: Normalisation mean.
        std: Normalisation standard deviation.
        input_size: Resize tiles to this side first (``None``: keep their size).
        input_mpp: µm/px the weights were trained at.
    """
    from scibind.builtin.image_encoders import CNNEncoder

    backbone = CNNEncoder(in_channels=3, embed_dim=embed_dim, width=width, depth=depth, weights=weights)
    return TileEncoder(backbone, embed_dim, mean=mean, std=std, input_size=input_size, input_mpp=input_mpp)


def tiny(embed_dim: int = 32, seed: int | None = 0) -> TileEncoder:
    """A two-stage CNN of width 8 that runs in milliseconds on CPU (tests, demo feature extraction).

    Args:
        embed_dim: Output width.
        seed: Initialise the weights from this seed, so frozen features are reproducible without a weights
            file (``None``: from the global torch RNG).
    """
    state = torch.random.get_rng_state()
    if seed is not None:
        torch.manual_seed(seed)
    try:
        return tile_cnn(embed_dim=embed_dim, width=8, depth=2, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    finally:
        if seed is not None:
            torch.random.set_rng_state(state)


class TileViT(nn.Module):
    """A plain Vision Transformer (patch embedding, pre-norm encoder, CLS token) in pure torch.

    Args:
        embed_dim: Output width.
        image_size: Side of the input tiles in pixels (positional embeddings are learnt for this size).
        patch_size: Side of a patch in pixels.
        width: Token width.
        depth: Transformer layers.
        heads: Attention heads.
        mlp_ratio: Hidden width of the MLP over ``width``.
    """

    def __init__(
        self,
        embed_dim: int = 256,
        image_size: int = 224,
        patch_size: int = 16,
        width: int = 192,
        depth: int = 6,
        heads: int = 3,
        mlp_ratio: float = 4.0,
    ) -> None:
        super().__init__()
        if image_size % patch_size:
            raise ConfigError(f"image_size {image_size} must be a multiple of patch_size {patch_size}")
        if width % heads:
            raise ConfigError(f"width {width} must be divisible by heads {heads}")
        self.patch = nn.Conv2d(3, width, patch_size, stride=patch_size)
        n_tokens = (image_size // patch_size) ** 2
        self.cls = nn.Parameter(torch.zeros(1, 1, width))
        self.pos = nn.Parameter(torch.randn(1, n_tokens + 1, width) * 0.02)
        layer = nn.TransformerEncoderLayer(
            width,
            heads,
            int(width * mlp_ratio),
            dropout=0.0,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.blocks = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, 3, image_size, image_size]`` (normalised) -> ``[B, embed_dim]`` from the CLS token."""
        tokens = self.patch(x).flatten(2).transpose(1, 2)
        tokens = torch.cat([self.cls.expand(len(tokens), -1, -1), tokens], dim=1) + self.pos
        return self.head(self.norm(self.blocks(tokens)[:, 0]))


def tile_vit(
    embed_dim: int = 256,
    image_size: int = 224,
    patch_size: int = 16,
    width: int = 192,
    depth: int = 6,
    heads: int = 3,
    weights: str | os.PathLike[str] | None = None,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    input_mpp: float | None = None,
) -> TileEncoder:
    """A small ViT on tiles resized to ``image_size`` (see :class:`TileViT`); ``weights`` is safetensors."""
    backbone = TileViT(embed_dim, image_size, patch_size, width, depth, heads)
    if weights is not None:
        _load_state(backbone, Path(weights))
    return TileEncoder(backbone, embed_dim, mean=mean, std=std, input_size=image_size, input_mpp=input_mpp)


def tiny_vit(embed_dim: int = 32) -> TileEncoder:
    """A one-layer ViT on 32-px tiles (8-px patches), for tests."""
    return tile_vit(embed_dim=embed_dim, image_size=32, patch_size=8, width=32, depth=1, heads=2)


def _load_state(module: nn.Module, path: Path, prefix: str = "") -> None:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if path.suffix != ".safetensors" or not path.is_file():
        raise ConfigError(
            f"weights {path}: need an existing .safetensors file (scibind never unpickles weights; convert a "
            "checkpoint with safetensors.torch.save_file(model.state_dict(), 'model.safetensors'))"
        )
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from exc
    if prefix:
        state = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    own = module.state_dict()
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        raise CheckpointError(
            f"{path}: weights do not fit {type(module).__name__}: "
            + "; ".join(
                f"{what} {len(keys)} keys (e.g. {keys[:3]})"
                for what, keys in (
                    ("missing", missing),
                    ("unexpected", unexpected),
                    ("wrong shape of", wrong),
                )
                if keys
            )
            + "; check the architecture and kwargs in config.json"
        )
    module.load_state_dict(state)


def pretrained(path: str | os.PathLike[str]) -> TileEncoder:
    """A user backbone from local files: a folder with ``config.json`` and ``model.safetensors``.

    ``config.json`` declares the architecture and its preprocessing::

        {"architecture": "pathology/vit",        # a registered tile encoder, or "package.module:factory"
         "kwargs": {"embed_dim": 384, "image_size": 224, "width": 384, "depth": 12, "heads": 6},
         "embed_dim": 384,                       # output width (default: kwargs.embed_dim)
         "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
         "input_size": 224, "input_mpp": 0.5,
         "prefix": ""}                            # strip this prefix from the weight names

    A registered architecture's weights are its backbone's (``TileViT``/``CNNEncoder`` state dict); a
    ``module:factory`` builds any ``nn.Module`` returning ``[B, embed_dim]`` from normalised tiles. Nothing
    is downloaded and nothing is unpickled.

    Args:
        path: The folder (or its ``config.json``).

    Raises:
        ConfigError: No ``config.json``/``model.safetensors``, or the config is incomplete.
        CheckpointError: The weights do not fit the architecture.
    """
    from scibind.registry import resolve_factory

    folder = Path(path).expanduser()
    if folder.name == "config.json":
        folder = folder.parent
    config_path, weights = folder / "config.json", folder / "model.safetensors"
    if not config_path.is_file() or not weights.is_file():
        raise ConfigError(
            f"pretrained tile encoder {folder}: expected a folder with config.json and model.safetensors "
            "(see the pathology guide, 'Your own backbone')"
        )
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{config_path}: not valid JSON ({exc})") from exc
    arch = config.get("architecture")
    kwargs = dict(config.get("kwargs", {}))
    if not arch:
        raise ConfigError(f"{config_path}: set 'architecture' (e.g. 'pathology/vit' or 'module:factory')")
    prep = {
        "mean": config.get("mean", IMAGENET_MEAN),
        "std": config.get("std", IMAGENET_STD),
        "input_size": config.get("input_size"),
        "input_mpp": config.get("input_mpp"),
    }
    if arch in ("pathology/vit", "pathology/tiny-vit", "vit"):
        backbone: nn.Module = TileViT(**kwargs)
        prep["input_size"] = prep["input_size"] or kwargs.get("image_size", 224)
    elif arch in ("pathology/cnn", "pathology/tiny", "cnn"):
        from scibind.builtin.image_encoders import CNNEncoder

        backbone = CNNEncoder(in_channels=3, **kwargs)
    else:
        backbone = resolve_factory(arch, what=f"architecture of {config_path}")(**kwargs)
    embed_dim = config.get("embed_dim", kwargs.get("embed_dim"))
    if embed_dim is None:
        raise ConfigError(f"{config_path}: set 'embed_dim' (the backbone's output width)")
    _load_state(backbone, weights, prefix=str(config.get("prefix", "")))
    return TileEncoder(backbone, int(embed_dim), **prep)
