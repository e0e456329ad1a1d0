"""Per-slide feature caches in the TRIDENT layout, keyed so a cache is reused but never stale.

A cache file holds ``coords`` (level-0 ``(x, y)``, with the tiling attributes of
:func:`scibind_pathology.tiling.save_coords`) and ``features`` (``float32[N, D]``, with the encoder's name,
options, preprocessing and weight digest as attributes). Its name ends with a key hashing everything that
changes the features: the slide file (path, size, modification time), the tiling, the tissue mask's
source, the encoder (name, options, a digest of its weights) and its preprocessing. Changing any of them
gives a new key, so an old cache is never read for new settings; files are written atomically, so a killed
extraction leaves no half-written cache.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scibind.errors import ReadError

from scibind_pathology.tiling import TileGrid, TilingConfig, coords_attrs

__all__ = ["FeatureBag", "cache_key", "encoder_digest", "extract_features", "load_features", "slide_identity"]

CACHE_VERSION = 1


@dataclass
class FeatureBag:
    """The cached features of one slide.

    Attributes:
        features: ``float32[N, D]``.
        coords: ``int64[N, 2]`` level-0 tile corners.
        attrs: The ``coords`` attributes (tiling) merged with the ``features`` attributes (encoder).
        path: The cache file.
    """

    features: np.ndarray
    coords: np.ndarray
    attrs: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None


def slide_identity(path: str | Path) -> dict[str, Any]:
    """What identifies a slide file's content cheaply: resolved path, size and modification time (ns)."""
    p = Path(path).resolve()
    stat = p.stat()
    return {"path": str(p), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def encoder_digest(encoder: Any) -> str:
    """sha256 of the encoder's weights (names, shapes and values of its state dict)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(encoder.state_dict().items()):
        digest.update(name.encode())
        array = tensor.detach().cpu().contiguous()
        digest.update(str(tuple(array.shape)).encode())
        digest.update(array.numpy().tobytes())
    return digest.hexdigest()


def cache_key(parts: dict[str, Any]) -> str:
    """A 16-hex-digit key over a JSON-able description of everything that determines the features."""
    text = json.dumps({"version": CACHE_VERSION, **parts}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def load_features(path: str | Path) -> FeatureBag:
    """Read a TRIDENT/CLAM-layout feature file (``features`` and ``coords``).

    Raises:
        ReadError: Not HDF5, or no ``features`` dataset (a coordinates-only file from tiling).
    """
    import h5py

    path = Path(path)
    try:
        with h5py.File(path, "r") as h5:
            if "features" not in h5:
                raise ReadError(
                    "holds no 'features' dataset (only tile coordinates?); extract features with a tile "
                    "encoder first (reader option encoder=..., or scibind prepare with "
                    "--set reader.pathology/wsi.encoder=pathology/tiny)",
                    path=path,
                )
            features = np.asarray(h5["features"][()], dtype=np.float32)
            attrs = dict(h5["features"].attrs)
            if "coords" in h5:
                coords = np.asarray(h5["coords"][()], dtype=np.int64)
                attrs = {**dict(h5["coords"].attrs), **attrs}
            else:
                coords = np.zeros((len(features), 2), dtype=np.int64)
    except OSError as exc:
        raise ReadError(f"not a readable HDF5 feature file ({exc})", path=path) from exc
    if features.ndim == 3 and features.shape[0] == 1:  # CLAM writes [1, N, D] in some versions
        features = features[0]
    if coords.ndim == 3 and coords.shape[0] == 1:
        coords = coords[0]
    if features.ndim != 2 or len(coords) != len(features):
        raise ReadError(
            f"features {features.shape} and coords {coords.shape} do not describe one bag of [N, D] features",
            path=path,
        )
    if not np.isfinite(features).all():
        raise ReadError("features contain NaN or infinite values; re-extract them", path=path)
    return FeatureBag(features, coords, attrs, path)


def _write(path: Path, grid: TileGrid, features: np.ndarray, name: str, attrs: dict[str, Any]) -> Path:
    import h5py
    from scibind.atomic import atomic_replace

    def write(tmp: Path) -> None:
        with h5py.File(tmp, "w") as h5:
            coords = h5.create_dataset("coords", data=grid.coords.astype(np.int64))
            for key, value in coords_attrs(grid, name).items():
                coords.attrs[key] = value
            h5.create_dataset("tissue_fraction", data=grid.tissue.astype(np.float32))
            dset = h5.create_dataset("features", data=features.astype(np.float32))
            for key, value in attrs.items():
                dset.attrs[key] = value if isinstance(value, (int, float, str)) else json.dumps(value)

    return atomic_replace(path, write)


def extract_features(
    slide_path: str | Path,
    cache_dir: str | Path,
    *,
    tiling: TilingConfig,
    encoder: str = "pathology/tiny",
    encoder_kwargs: dict[str, Any] | None = None,
    slide_mpp: float | None = None,
    geojson: str | Path | None = None,
    batch_size: int = 64,
    workers: int = 1,
    device: str = "cpu",
    grid: TileGrid | None = None,
    tissue_source: str | None = None,
    model: Any | None = None,
) -> Path:
    """Tile a slide, encode every tile and cache the features; reuse the cache when the key matches.

    Args:
        slide_path: The slide.
        cache_dir: Folder of the cache files (``<slide stem>-<key>.h5``).
        tiling: Scale, tile size, overlap and tissue threshold.
        encoder: A registered ``wsi_tile`` encoder.
        encoder_kwargs: Its options (a ``weights`` or ``path`` file is part of the key through the digest).
        slide_mpp: µm/px for slides without units.
        geojson: A tissue annotation to use instead of automatic segmentation.
        batch_size: Tiles per forward pass.
        workers: Processes reading tiles.
        device: Torch device of the encoder.
        grid: A grid already planned for this slide and ``tiling`` (skips segmentation).
        tissue_source: How ``grid`` was filtered (part of the key when ``grid`` is given).
        model: The already built ``encoder`` to use (so repeated calls share one initialisation).

    Returns:
        The cache file.

    Raises:
        ReadError: The slide cannot be read.
        ConfigError: The encoder expects another µm/px than ``tiling.mpp``.
    """
    import scibind
    import torch
    from scibind.errors import ConfigError

    from scibind_pathology.extract import iter_tile_batches
    from scibind_pathology.slide import open_slide
    from scibind_pathology.tiling import plan_tiles
    from scibind_pathology.tissue import mask_from_geojson, segment_tissue

    slide_path = Path(slide_path)
    if model is None:
        model = scibind.create_encoder(encoder, **(encoder_kwargs or {}))
    model = model.eval().to(device)
    prep = model.preprocessing() if hasattr(model, "preprocessing") else {}
    want = prep.get("input_mpp")
    if want and abs(float(want) / tiling.mpp - 1.0) > tiling.mpp_tolerance:
        raise ConfigError(
            f"encoder {encoder!r} expects tiles at {want} µm/px but tiling.mpp is {tiling.mpp}; "
            f"set mpp={want}"
        )
    mask_source = tissue_source or (
        {"geojson": slide_identity(geojson)} if geojson else {"otsu": tiling.mask_mpp}
    )
    key = cache_key(
        {
            "slide": slide_identity(slide_path),
            "slide_mpp": slide_mpp,
            "tiling": tiling.to_dict(),
            "mask": mask_source,
            "encoder": {"name": encoder, "kwargs": encoder_kwargs or {}, "weights": encoder_digest(model)},
            "preprocessing": prep,
        }
    )
    out = Path(cache_dir) / f"{slide_path.stem}-{key}.h5"
    if out.is_file():
        return out
    with open_slide(slide_path, slide_mpp=slide_mpp) as slide:
        if grid is None:
            if geojson:
                mask = mask_from_geojson(geojson, slide.dimensions, downsample=tiling.mask_mpp / slide.mpp)
            else:
                mask = segment_tissue(slide, mask_mpp=tiling.mask_mpp, min_area_um2=tiling.min_area_um2)
            grid = plan_tiles(slide, tiling, mask)
        chunks = []
        with torch.no_grad():
            for _, tiles in iter_tile_batches(
                slide_path,
                grid,
                batch_size=batch_size,
                workers=workers,
                slide_mpp=slide_mpp,
                slide=slide,
                copy=False,  # each batch is encoded before the next is asked for
            ):
                batch = torch.from_numpy(tiles).permute(0, 3, 1, 2).to(device)
                chunks.append(model(batch).float().cpu().numpy())
    width = int(getattr(model, "embed_dim", 0))
    features = np.concatenate(chunks) if chunks else np.zeros((0, width), dtype=np.float32)
    attrs = {
        "encoder": encoder,
        "encoder_kwargs": encoder_kwargs or {},
        "encoder_digest": encoder_digest(model),
        "preprocessing": prep,
        "cache_key": key,
        "slide": str(slide_path.resolve()),
    }
    return _write(out, grid, features, slide_path.stem, attrs)
