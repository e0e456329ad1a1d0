"""Attention heatmaps: per-tile weights painted over the slide thumbnail, saved as PNG."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scibind.errors import ShapeError

__all__ = ["attention_heatmap"]


def attention_heatmap(
    slide_path: str | Path,
    coords: np.ndarray,
    weights: np.ndarray,
    patch_size_level0: int,
    out_png: str | Path,
    *,
    max_side: int = 1024,
    alpha: float = 0.5,
    slide_mpp: float | None = None,
) -> Path:
    """Paint tile weights (e.g. ``ABMILEncoder.attention``) over the thumbnail and write a PNG.

    Weights are rescaled to ``[0, 1]`` over the slide and coloured with a blue-to-red ramp; tiles without a
    weight stay uncoloured.

    Args:
        slide_path: The slide.
        coords: ``int[N, 2]`` level-0 tile corners (the ``coords`` of its feature file).
        weights: ``float[N]`` one weight per tile.
        patch_size_level0: Tile side in level-0 pixels (the ``patch_size_level0`` attribute).
        out_png: The PNG to write (atomically).
        max_side: Longer side of the thumbnail.
        alpha: Opacity of the colour over tissue.
        slide_mpp: µm/px for slides without units.

    Returns:
        ``out_png``.

    Raises:
        ShapeError: ``coords`` and ``weights`` disagree in length.
    """
    from PIL import Image
    from scibind.atomic import atomic_replace

    from scibind_pathology.slide import open_slide

    coords, weights = np.asarray(coords), np.asarray(weights, dtype=np.float64).ravel()
    if len(coords) != len(weights):
        raise ShapeError(f"{len(coords)} tile corners but {len(weights)} weights; pass one weight per tile")
    with open_slide(slide_path, slide_mpp=slide_mpp) as slide:
        thumb = slide.thumbnail(max_side).astype(np.float64) / 255.0
        width, height = slide.dimensions
    scale_x, scale_y = thumb.shape[1] / width, thumb.shape[0] / height
    heat = np.zeros(thumb.shape[:2])
    covered = np.zeros(thumb.shape[:2], dtype=bool)
    span = np.ptp(weights) if len(weights) else 0.0
    norm = (weights - weights.min()) / span if span > 0 else np.ones_like(weights)
    for (x, y), w in zip(coords, norm, strict=True):
        x0, y0 = int(x * scale_x), int(y * scale_y)
        x1 = max(x0 + 1, round((x + patch_size_level0) * scale_x))
        y1 = max(y0 + 1, round((y + patch_size_level0) * scale_y))
        heat[y0:y1, x0:x1] = np.maximum(heat[y0:y1, x0:x1], w)
        covered[y0:y1, x0:x1] = True
    colour = np.stack([heat, 0.2 * np.ones_like(heat), 1.0 - heat], axis=-1)
    blended = np.where(covered[..., None], (1 - alpha) * thumb + alpha * colour, thumb)
    image = Image.fromarray((np.clip(blended, 0, 1) * 255).astype(np.uint8))
    return atomic_replace(out_png, lambda tmp: image.save(tmp, "PNG"))
