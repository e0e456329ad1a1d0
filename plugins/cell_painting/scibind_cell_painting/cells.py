"""Single cells from a field: nuclei found on the DNA channel (scikit-image), fixed-size crops around them."""

from __future__ import annotations

import numpy as np
from scibind.errors import ConfigError

__all__ = ["crop_cells", "find_nuclei"]


def find_nuclei(dna: np.ndarray, *, min_area_px: int = 30, smooth_sigma_px: float = 2.0) -> np.ndarray:
    """Centres of nuclei in a DNA (Hoechst) image.

    Smooth with a Gaussian, threshold with Otsu's method, drop objects smaller than ``min_area_px`` and
    return each remaining object's centroid. Touching nuclei are not split (no watershed).

    Args:
        dna: ``[H, W]`` intensities (any dtype).
        min_area_px: Smallest nucleus area, in pixels.
        smooth_sigma_px: Gaussian sigma in pixels before thresholding.

    Returns:
        ``float[n, 2]`` centroids as ``(y, x)`` pixels, sorted by ``y`` then ``x``.

    Raises:
        ConfigError: ``dna`` is not 2D.
    """
    from skimage.filters import gaussian, threshold_otsu
    from skimage.measure import label, regionprops

    if dna.ndim != 2:
        raise ConfigError(f"find_nuclei needs a 2D DNA image, got shape {dna.shape}")
    smooth = gaussian(dna.astype(np.float32), sigma=smooth_sigma_px, preserve_range=True)
    if float(smooth.max()) == float(smooth.min()):
        return np.zeros((0, 2), dtype=np.float64)
    regions = regionprops(label(smooth > threshold_otsu(smooth)))
    centres = np.array([r.centroid for r in regions if r.area >= min_area_px], dtype=np.float64)
    if len(centres) == 0:
        return np.zeros((0, 2), dtype=np.float64)
    return centres[np.lexsort((centres[:, 1], centres[:, 0]))]


def crop_cells(pixels: np.ndarray, centres: np.ndarray, crop_px: int) -> tuple[np.ndarray, np.ndarray]:
    """Square crops of every channel around each centre; crops that would leave the image are skipped.

    Args:
        pixels: ``[C, H, W]`` field.
        centres: ``[n, 2]`` ``(y, x)`` centres.
        crop_px: Side of the crop in pixels.

    Returns:
        ``(crops [m, C, crop_px, crop_px], kept centre indices [m])``.
    """
    if crop_px < 1:
        raise ConfigError(f"crop_px must be >= 1, got {crop_px}")
    _, height, width = pixels.shape
    half = crop_px // 2
    crops, kept = [], []
    for i, (y, x) in enumerate(np.round(centres).astype(int)):
        top, left = y - half, x - half
        if top < 0 or left < 0 or top + crop_px > height or left + crop_px > width:
            continue
        crops.append(pixels[:, top : top + crop_px, left : left + crop_px])
        kept.append(i)
    if not crops:
        return np.zeros((0, pixels.shape[0], crop_px, crop_px), dtype=pixels.dtype), np.zeros(0, dtype=int)
    return np.stack(crops), np.array(kept, dtype=int)
