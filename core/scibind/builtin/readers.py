"""The core readers: text (inline or ``.txt``), vectors (inline, JSON, ``.npy``, ``.safetensors``), images."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from scibind.data.readers import Reader
from scibind.data.types import Sample
from scibind.errors import MissingDependencyError, ReadError

__all__ = ["ImageReader", "TextReader", "VectorReader", "resolve_path"]


def resolve_path(value: str | Path, base_dir: Path | None, record_id: str = "") -> Path:
    """The file a manifest value names: absolute, or relative to ``base_dir`` (the manifest's folder).

    Raises:
        ReadError: The file does not exist; the message says where it was looked for.
    """
    path = Path(value).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = Path(base_dir) / path
    if not path.is_file():
        where = f" (relative paths resolve against the manifest folder {base_dir})" if base_dir else ""
        raise ReadError(
            f"file not found{where}; fix the path in the manifest", path=path, record=record_id or None
        )
    return path


def _provenance(source: Path | str, record_id: str) -> dict[str, Any]:
    return {"source": str(source), "record": record_id}


class TextReader(Reader):
    """Free text: the manifest value itself, or a UTF-8 ``.txt`` file (relative to the manifest folder).

    Args:
        strip: Remove leading and trailing whitespace.
    """

    modality: ClassVar[str] = "text"

    def __init__(self, strip: bool = True) -> None:
        self.strip = strip

    def read(self, value: Any, *, record_id: str = "", base_dir: Path | None = None) -> Sample:
        """Read inline text or a ``.txt`` file.

        Raises:
            ReadError: Not text, the file is missing or not UTF-8, or the text is empty.
        """
        if not isinstance(value, str):
            raise ReadError(
                f"text must be a string or a .txt path, got {type(value).__name__}", record=record_id or None
            )
        source: Path | str = "inline"
        text = value
        if "\n" not in value and value.strip().lower().endswith(".txt"):
            path = resolve_path(value.strip(), base_dir, record_id)
            try:
                text = path.read_text(encoding="utf-8")
            except UnicodeDecodeError as exc:
                raise ReadError(
                    f"not UTF-8 text ({exc.reason} at byte {exc.start}); re-save it as UTF-8",
                    path=path,
                    record=record_id or None,
                ) from exc
            source = path
        if self.strip:
            text = text.strip()
        if not text.strip():
            raise ReadError(
                "the text is empty; leave the cell empty to mark the view absent instead",
                path=None if source == "inline" else source,
                record=record_id or None,
            )
        return Sample(id=record_id, modality=self.modality, data=text, meta=_provenance(source, record_id))


class VectorReader(Reader):
    """A 1-D feature vector -> ``float32`` tensor ``[D]``.

    Accepted values: a list, tuple, numpy array or tensor; a JSON array string (``"[0.1, 2]"``); a ``.npy``
    file (loaded without pickle) or a ``.safetensors`` file holding one tensor (or ``key``).

    Args:
        dim: Expected length; other lengths are an error.
        key: Tensor name inside ``.safetensors`` files holding several tensors.
    """

    modality: ClassVar[str] = "vector"

    def __init__(self, dim: int | None = None, key: str | None = None) -> None:
        self.dim = dim
        self.key = key

    def _load_file(self, path: Path, record_id: str) -> np.ndarray:
        name = path.name.lower()
        try:
            if name.endswith(".npy"):
                return np.load(path, allow_pickle=False)
            from safetensors.numpy import load_file

            tensors = load_file(str(path))
        except (ValueError, OSError) as exc:
            raise ReadError(
                f"cannot load the array ({type(exc).__name__}: {exc})", path=path, record=record_id or None
            ) from exc
        except Exception as exc:  # safetensors raises its own SafetensorError for corrupt headers
            raise ReadError(
                f"cannot load the safetensors file ({type(exc).__name__}: {exc})",
                path=path,
                record=record_id or None,
            ) from exc
        if self.key is not None:
            if self.key not in tensors:
                raise ReadError(
                    f"no tensor named {self.key!r}; the file has {sorted(tensors)}",
                    path=path,
                    record=record_id or None,
                )
            return tensors[self.key]
        if len(tensors) != 1:
            raise ReadError(
                f"expected one tensor, found {sorted(tensors)}; pass VectorReader(key=...)",
                path=path,
                record=record_id or None,
            )
        return next(iter(tensors.values()))

    def _to_array(self, value: Any, record_id: str, base_dir: Path | None) -> tuple[np.ndarray, Path | str]:
        if isinstance(value, torch.Tensor):
            return value.detach().cpu().numpy(), "inline"
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                try:
                    return np.asarray(json.loads(text), dtype=np.float64), "inline"
                except (json.JSONDecodeError, ValueError, TypeError) as exc:
                    raise ReadError(
                        f"inline vector is not a JSON array of numbers ({exc})", record=record_id or None
                    ) from exc
            if text.lower().endswith((".npy", ".safetensors")):
                path = resolve_path(text, base_dir, record_id)
                return self._load_file(path, record_id), path
            raise ReadError(
                f"cannot read {text[:40]!r} as a vector: use a JSON array ('[0.1, 2.0]') or a .npy / "
                ".safetensors path",
                record=record_id or None,
            )
        if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
            return value, "inline"
        if isinstance(value, (list, tuple, np.ndarray)):
            try:
                # None (a null inside a Parquet list) becomes NaN and is then reported as non-finite.
                return np.asarray([np.nan if v is None else v for v in value], dtype=np.float64), "inline"
            except (ValueError, TypeError) as exc:
                raise ReadError(f"inline vector holds non-numbers ({exc})", record=record_id or None) from exc
        raise ReadError(
            f"expected a vector (list, array, JSON array or file path), got {type(value).__name__}",
            record=record_id or None,
        )

    def read(self, value: Any, *, record_id: str = "", base_dir: Path | None = None) -> Sample:
        """Read one vector.

        Raises:
            ReadError: Not 1-D, wrong length, non-finite values, or an unreadable file.
        """
        array, source = self._to_array(value, record_id, base_dir)
        path = None if source == "inline" else source
        if array.ndim != 1:
            raise ReadError(
                f"expected a 1-D vector, got shape {tuple(array.shape)}", path=path, record=record_id or None
            )
        if array.dtype.kind not in "biuf":
            raise ReadError(f"expected numbers, got dtype {array.dtype}", path=path, record=record_id or None)
        if self.dim is not None and array.shape[0] != self.dim:
            raise ReadError(
                f"expected {self.dim} values, got {array.shape[0]}", path=path, record=record_id or None
            )
        finite = np.isfinite(array)
        if not finite.all():
            bad = np.flatnonzero(~finite)
            raise ReadError(
                f"{bad.size} non-finite value(s) (NaN/inf), first at position {int(bad[0])}; "
                "impute or drop them "
                "(leave the whole cell empty to mark the view absent)",
                path=path,
                record=record_id or None,
            )
        data = torch.tensor(np.asarray(array, dtype=np.float32))
        meta = {**_provenance(source, record_id), "dim": int(data.shape[0])}
        return Sample(id=record_id, modality=self.modality, data=data, meta=meta)


class ImageReader(Reader):
    """A 2D image file -> ``float32`` tensor ``[C, H, W]``.

    PNG/JPEG (and other formats Pillow opens) are read with Pillow, TIFF with tifffile. ``uint8`` and
    ``uint16`` images are scaled to ``[0, 1]`` by their dtype's maximum; other dtypes keep their values. A
    list (or ``{field: path}`` dict) of single-image files is stacked as channels, in order. ``meta`` holds
    ``source``, ``record``, ``dtype`` (of the file), ``scaled``, ``original_size`` ``(H, W)`` and, for
    stacked files, ``channels``.

    Args:
        size: ``(H, W)`` to resize to (bilinear, antialiased), or ``None`` to keep the file's size.
    """

    modality: ClassVar[str] = "image"
    TIFF_SUFFIXES: ClassVar[tuple[str, ...]] = (".tif", ".tiff")

    def __init__(self, size: Sequence[int] | None = None) -> None:
        if size is not None and (len(size) != 2 or any(int(s) <= 0 for s in size)):
            raise ValueError(f"size must be (H, W) with positive values, got {size!r}")
        self.size = None if size is None else (int(size[0]), int(size[1]))

    def _read_tiff(self, path: Path, record_id: str) -> np.ndarray:
        try:
            import tifffile
        except ImportError as exc:
            raise MissingDependencyError(
                f"reading TIFF images ({path}) needs tifffile: pip install tifffile"
            ) from exc
        try:
            with tifffile.TiffFile(path) as tif:
                series = tif.series[0]
                array = series.asarray()
                axes = series.axes
        except Exception as exc:  # tifffile raises TiffFileError, ValueError, OSError, ...
            raise ReadError(
                f"cannot read TIFF ({type(exc).__name__}: {exc})", path=path, record=record_id or None
            ) from exc
        if array.ndim == 3 and axes.endswith("S"):
            array = np.moveaxis(array, -1, 0)
        elif array.ndim == 2:
            array = array[None]
        elif array.ndim != 3:
            raise ReadError(
                f"expected a 2D image, got shape {array.shape} (axes {axes}); a plugin reader is needed "
                "for stacks, volumes and pyramids",
                path=path,
                record=record_id or None,
            )
        return array

    def _read_pil(self, path: Path, record_id: str) -> np.ndarray:
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(path) as image:
                if image.mode in ("P", "PA", "CMYK", "YCbCr", "LAB", "HSV", "1"):
                    image = image.convert(
                        "RGBA" if "transparency" in image.info or image.mode == "PA" else "RGB"
                    )
                array = np.asarray(image)
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            raise ReadError(
                f"cannot read image ({type(exc).__name__}: {exc})", path=path, record=record_id or None
            ) from exc
        if array.ndim == 2:
            return array[None]
        return np.moveaxis(array, -1, 0)

    def _read_file(self, value: Any, base_dir: Path | None, record_id: str) -> tuple[np.ndarray, Path]:
        if not isinstance(value, (str, Path)):
            raise ReadError(f"expected an image path, got {type(value).__name__}", record=record_id or None)
        path = resolve_path(str(value).strip(), base_dir, record_id)
        if path.suffix.lower() in self.TIFF_SUFFIXES:
            return self._read_tiff(path, record_id), path
        return self._read_pil(path, record_id), path

    def read(self, value: Any, *, record_id: str = "", base_dir: Path | None = None) -> Sample:
        """Read one image, or stack several single-image files as channels.

        Raises:
            ReadError: A file is missing or unreadable, not 2D, or stacked files differ in size or dtype.
        """
        channels: list[str] | None = None
        if isinstance(value, Mapping):
            channels = [str(k) for k in value]
            files = list(value.values())
        elif isinstance(value, (list, tuple)):
            files = list(value)
        else:
            files = [value]
        if not files or any(f is None for f in files):
            raise ReadError(
                "a channel file is missing; every channel of a stacked image needs a path",
                record=record_id or None,
            )
        arrays, paths = zip(*(self._read_file(f, base_dir, record_id) for f in files), strict=True)
        shapes = {a.shape[1:] for a in arrays}
        dtypes = {a.dtype for a in arrays}
        if len(shapes) > 1 or len(dtypes) > 1:
            detail = ", ".join(
                f"{p.name}: {a.shape[1:]} {a.dtype}" for p, a in zip(paths, arrays, strict=True)
            )
            raise ReadError(
                f"channel files differ in size or dtype ({detail})", path=paths[0], record=record_id or None
            )
        array = arrays[0] if len(arrays) == 1 else np.concatenate(arrays, axis=0)
        dtype = array.dtype
        scale = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}.get(dtype)
        if dtype.kind not in "biuf":
            raise ReadError(f"unsupported pixel dtype {dtype}", path=paths[0], record=record_id or None)
        data = torch.tensor(np.asarray(array, dtype=np.float32))
        if scale is not None:
            data = data / scale
        original_size = (int(data.shape[1]), int(data.shape[2]))
        if self.size is not None and original_size != self.size:
            data = torch.nn.functional.interpolate(
                data[None], size=self.size, mode="bilinear", align_corners=False, antialias=True
            )[0]
        if not bool(torch.isfinite(data).all()):
            raise ReadError("the image holds NaN or infinite pixels", path=paths[0], record=record_id or None)
        source = str(paths[0]) if len(paths) == 1 else [str(p) for p in paths]
        meta: dict[str, Any] = {
            "source": source,
            "record": record_id,
            "dtype": str(dtype),
            "scaled": scale is not None,
            "original_size": original_size,
        }
        if channels is not None:
            meta["channels"] = channels
        return Sample(id=record_id, modality=self.modality, data=data, meta=meta)
