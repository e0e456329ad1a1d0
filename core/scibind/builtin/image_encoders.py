"""A small residual CNN for 2D images with any number of channels, in pure torch."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import torch
from torch import nn

from scibind.errors import CheckpointError, ConfigError, ShapeError

__all__ = ["CNNEncoder", "tiny_cnn"]


def _norm(channels: int) -> nn.GroupNorm:
    # GroupNorm, not BatchNorm: per-sample statistics keep a DDP run equal to one process on the global batch.
    # At most 8 groups of at least 4 channels, so even a 1x1 feature map has several values per group.
    groups = max(g for g in range(1, 9) if channels % g == 0 and (g == 1 or channels // g >= 4))
    return nn.GroupNorm(groups, channels)


class ResidualBlock(nn.Module):
    """Two 3x3 convolutions (the first with stride 2) plus a 1x1 strided shortcut."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=2, padding=1, bias=False)
        self.norm1 = _norm(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.norm2 = _norm(c_out)
        self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=2, bias=False), _norm(c_out))
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Halve the spatial size, change the width to ``c_out``."""
        y = self.act(self.norm1(self.conv1(x)))
        return self.act(self.norm2(self.conv2(y)) + self.shortcut(x))


class CNNEncoder(nn.Module):
    """Residual CNN with GroupNorm: a 3x3 stem, residual stages, global average pooling and a linear head.

    Each of the ``depth`` stages halves H and W and doubles the width.

    Args:
        in_channels: Channels of the input images (any number: RGB, fluorescence stains, ...).
        embed_dim: Output width.
        width: Channels of the stem; stage ``i`` has ``width * 2**i``.
        depth: Number of residual stages.
        weights: A ``.safetensors`` file to load (never a pickle). It holds either every key of
            :meth:`state_dict` (as :meth:`save_weights` writes it) or only the backbone's (``backbone.*``);
            then the head keeps its fresh initialisation. Keys must match exactly.

    Attributes:
        modality: ``"image"``.
        embed_dim: Output width.
    """

    modality = "image"

    def __init__(
        self,
        in_channels: int = 3,
        embed_dim: int = 256,
        width: int = 32,
        depth: int = 4,
        weights: str | os.PathLike[str] | None = None,
    ) -> None:
        super().__init__()
        for name, value in (("in_channels", in_channels), ("embed_dim", embed_dim), ("width", width)):
            if value < 1:
                raise ConfigError(f"encoder option {name!r} must be >= 1, got {value}")
        if depth < 0:
            raise ConfigError(f"encoder option 'depth' must be >= 0, got {depth}")
        self.in_channels = in_channels
        self.embed_dim = embed_dim
        self.width = width
        self.depth = depth
        widths = [width * 2**i for i in range(depth + 1)]
        self.backbone = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1, bias=False),
            _norm(width),
            nn.GELU(),
            *(ResidualBlock(c_in, c_out) for c_in, c_out in itertools.pairwise(widths)),
        )
        self.head = nn.Linear(widths[-1], embed_dim)
        if weights is not None:
            self.load_weights(weights)

    def _check(self, data: object) -> torch.Tensor:
        if not isinstance(data, torch.Tensor) or data.dim() != 4 or data.shape[1] != self.in_channels:
            got = tuple(data.shape) if isinstance(data, torch.Tensor) else type(data).__name__
            raise ShapeError(
                f"image encoder expects float images [n, {self.in_channels}, H, W] "
                f"(in_channels={self.in_channels}), got {got}; set the tower's encoder_kwargs.in_channels "
                "to the images' channel count"
            )
        weight = self.head.weight
        return data.to(device=weight.device, dtype=weight.dtype)

    def forward_tokens(self, data: torch.Tensor) -> torch.Tensor:
        """One token per cell of the final feature map.

        Args:
            data: ``float[n, in_channels, H, W]``.

        Returns:
            ``[n, T, embed_dim]`` with ``T = H' * W'``; their mean over ``T`` is :meth:`forward`.
        """
        features = self.backbone(self._check(data))
        return self.head(features.flatten(2).transpose(1, 2))

    def forward(self, data: torch.Tensor) -> torch.Tensor:
        """Embed images.

        Args:
            data: ``float[n, in_channels, H, W]`` (any H, W).

        Returns:
            ``[n, embed_dim]``.

        Raises:
            ShapeError: ``data`` is not 4-D or has the wrong channel count.
        """
        features = self.backbone(self._check(data))
        return self.head(features.mean(dim=(2, 3)))

    def forward_with_tokens(self, data: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`forward` and :meth:`forward_tokens` from one pass of the backbone."""
        tokens = self.forward_tokens(data)
        return tokens.mean(dim=1), tokens

    def save_weights(self, path: str | os.PathLike[str]) -> Path:
        """Write every weight to a ``.safetensors`` file (atomically) that ``weights=`` loads back."""
        from safetensors.torch import save_file

        from scibind.atomic import atomic_replace

        tensors = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        return atomic_replace(path, lambda tmp: save_file(tensors, str(tmp)))

    def load_weights(self, path: str | os.PathLike[str]) -> None:
        """Load a ``.safetensors`` file written by :meth:`save_weights` (or a backbone-only one).

        Raises:
            ConfigError: The path does not exist or is not a ``.safetensors`` file.
            CheckpointError: The file is unreadable or its keys or shapes do not match this architecture.
        """
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        path = Path(path)
        if path.suffix != ".safetensors":
            raise ConfigError(
                f"encoder option 'weights': {path} is not a .safetensors file; scibind never unpickles "
                "weights: convert with safetensors.torch.save_file(model.state_dict(), 'cnn.safetensors')"
            )
        if not path.is_file():
            raise ConfigError(f"encoder option 'weights': {path} does not exist")
        try:
            state = load_file(str(path))
        except (SafetensorError, OSError) as exc:
            raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from exc
        own = self.state_dict()
        expected = (
            set(own)
            if any(k.startswith("head.") for k in state)
            else {k for k in own if k.startswith("backbone.")}
        )
        missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
        wrong = sorted(k for k in expected & set(state) if state[k].shape != own[k].shape)
        if missing or unexpected or wrong:
            raise CheckpointError(
                f"{path}: weights do not fit CNNEncoder(in_channels={self.in_channels}, "
                f"embed_dim={self.embed_dim}, width={self.width}, depth={self.depth}): "
                + "; ".join(
                    f"{what} {len(keys)} keys (e.g. {keys[:3]})"
                    for what, keys in (
                        ("missing", missing),
                        ("unexpected", unexpected),
                        ("wrong shape of", wrong),
                    )
                    if keys
                )
                + "; set in_channels/width/depth/embed_dim to the values the file was saved with"
            )
        self.load_state_dict({**own, **state})


def tiny_cnn(in_channels: int = 3, embed_dim: int = 32) -> CNNEncoder:
    """Stem plus one residual stage (width 8): a CNN that runs in milliseconds on CPU, for tests."""
    return CNNEncoder(in_channels=in_channels, embed_dim=embed_dim, width=8, depth=1)
