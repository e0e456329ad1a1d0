"""Readers of this plugin: 3D volumes (``ct_volume``) and 2D medical images (``medical_image``).

``medical_imaging/volume`` opens NIfTI (3D; 4D with ``volume_index``), DICOM files (single images and
enhanced multi-frame), DICOM series folders, ``*.series.json`` listings, TIFF stacks and MHA/NRRD files
(SimpleITK, optional), runs the
configured :class:`~scibind_medical_imaging.pipeline.VolumePipeline` (MONAI dictionary transforms) and keeps
the result in a budgeted :class:`~scibind_medical_imaging.cache.VolumeCache`. ``medical_imaging/radiograph``
opens DICOM radiographs and PNG/JPEG images.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from scibind.data.readers import Reader
from scibind.data.types import Sample
from scibind.errors import ReadError

from scibind_medical_imaging.cache import VolumeCache, content_digest
from scibind_medical_imaging.dicom import (
    SERIES_MEMBER,
    SERIES_SUFFIX,
    dicom_files,
    member_series,
    read_dicom,
    read_dicom_series,
    series_groups,
    series_listing,
    split_member,
)
from scibind_medical_imaging.itkio import detached_data_files, is_itk, read_itk
from scibind_medical_imaging.pipeline import (
    ImagePipeline,
    VolumePipeline,
    build_transforms,
    validate,
)
from scibind_medical_imaging.volume import Volume, axcodes, spacing_from_affine

__all__ = ["RadiographReader", "VolumeReader", "load_volume", "resolve_input"]

READER_VERSION = "1"
"""Bumped whenever decoding changes, so caches written by an older reader are not reused."""


def resolve_input(value: Any, base_dir: Path | None, record_id: str) -> Path:
    """The file or folder a manifest value names (relative to ``base_dir``).

    Raises:
        ReadError: The value is not a path, or nothing exists there.
    """
    if not isinstance(value, (str, Path)) or not str(value).strip():
        raise ReadError(
            f"expected a path to an image file or DICOM folder, got {type(value).__name__}",
            record=record_id or "(no id)",
        )
    path = Path(str(value).strip()).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = Path(base_dir) / path
    if not path.exists() and split_member(path) is None:
        where = f" (relative paths resolve against the manifest folder {base_dir})" if base_dir else ""
        raise ReadError(f"no such file or folder{where}; fix the path", path=path, record=record_id or None)
    return path


def _is_nifti(path: Path) -> bool:
    name = path.name.lower()
    return name.endswith((".nii", ".nii.gz"))


def input_files(path: Path, record_id: str = "") -> list[Path]:
    """The files whose bytes make up the image at ``path`` (one file, a folder's files, a listing's)."""
    if split_member(path) is not None:
        return member_series(path, record_id)
    if path.is_dir():
        return dicom_files(path)
    if path.name.lower().endswith(SERIES_SUFFIX):
        return [path, *series_listing(path, record_id)]
    if is_itk(path):
        return [path, *detached_data_files(path, record_id)]
    return [path]


def load_volume(path: Path, pipeline: VolumePipeline, record_id: str = "") -> Volume:
    """Decode ``path`` into a :class:`Volume` (no preprocessing) according to its format.

    Raises:
        ReadError: Unsupported format, or the decoder's error naming the file.
    """
    from scibind_medical_imaging.nifti import read_nifti, read_tiff_stack

    name = path.name.lower()
    if split_member(path) is not None:
        return read_dicom_series(
            member_series(path, record_id),
            where=path,
            record_id=record_id,
            assume_spacing_mm=pipeline.assume_spacing_mm,
        )
    if path.is_dir():
        return read_dicom_series(
            dicom_files(path), where=path, record_id=record_id, assume_spacing_mm=pipeline.assume_spacing_mm
        )
    if name.endswith(SERIES_SUFFIX):
        return read_dicom_series(
            series_listing(path, record_id),
            where=path,
            record_id=record_id,
            assume_spacing_mm=pipeline.assume_spacing_mm,
        )
    if _is_nifti(path):
        return read_nifti(path, record_id=record_id, volume_index=pipeline.volume_index)
    if name.endswith((".tif", ".tiff")):
        return read_tiff_stack(path, record_id=record_id, spacing_mm=pipeline.tiff_spacing_mm)
    if is_itk(path):
        return read_itk(path, record_id=record_id, volume_index=pipeline.volume_index)
    return read_dicom(path, record_id=record_id, assume_spacing_mm=pipeline.assume_spacing_mm)


def _geometry(array: np.ndarray, affine: np.ndarray) -> dict[str, Any]:
    return {
        "shape": list(array.shape),
        "spacing_mm": [round(s, 6) for s in spacing_from_affine(affine)],
        "orientation": axcodes(affine),
        "affine": np.round(np.asarray(affine, dtype=np.float64), 6).tolist(),
    }


class VolumeReader(Reader):
    """A 3D image -> ``float32`` tensor ``[1, I, J, K]`` (channel first, MONAI order), preprocessed.

    ``meta`` holds ``source``, ``record``, ``format``, ``imaging_modality`` (DICOM Modality), the output
    ``spacing_mm``, ``orientation`` and ``affine`` (voxel -> RAS mm), the ``original_*`` geometry, the
    ``rescale_slope``/``rescale_intercept`` applied, the safe DICOM attributes and ``cache`` (``ram``,
    ``disk`` or ``miss``). No identifying header value is ever copied.

    Args:
        cache_ram_mb: RAM budget of the preprocessed-volume cache in MiB (0: off).
        cache_dir: Folder of the disk cache (``None``: RAM only).
        cache_disk_mb: Disk budget of the cache in MiB.
        **options: :class:`~scibind_medical_imaging.pipeline.VolumePipeline` options (``spacing_mm``,
            ``window_hu``, ``roi_size``, ...); in a recipe, ``towers.<view>.reader_kwargs``. A relative
            ``cache_dir`` is relative to the working directory.
    """

    modality: ClassVar[str] = "ct_volume"
    pipeline_model: ClassVar[type[VolumePipeline]] = VolumePipeline

    def __init__(
        self,
        cache_ram_mb: float = 1024,
        cache_dir: str | Path | None = None,
        cache_disk_mb: float = 20480,
        **options: Any,
    ) -> None:
        self._pipeline: VolumePipeline = validate(VolumePipeline, options, "medical_imaging/volume options")
        self._cache_options = {"ram_mb": cache_ram_mb, "disk_dir": cache_dir, "disk_mb": cache_disk_mb}
        self._cache: VolumeCache | None = None
        self._transforms: dict[str, Any] = {}

    def config(self) -> tuple[VolumePipeline, VolumeCache]:
        """The validated pipeline options and the cache (created on first use)."""
        if self._cache is None:
            self._cache = VolumeCache(**self._cache_options)
        return self._pipeline, self._cache

    def _preprocess(self, volume: Volume, pipeline: VolumePipeline) -> tuple[np.ndarray, np.ndarray]:
        steps = (
            pipeline.orientation,
            pipeline.spacing_mm,
            pipeline.window_hu,
            pipeline.normalize,
            pipeline.roi_size,
        )
        if not any(steps):
            return volume.array[None], volume.affine
        import torch
        from monai.data import MetaTensor

        digest = pipeline.digest()
        if digest not in self._transforms:
            self._transforms[digest] = build_transforms(pipeline)
        image = MetaTensor(torch.from_numpy(volume.array[None]), affine=torch.as_tensor(volume.affine))
        out = self._transforms[digest]({"image": image})["image"]
        affine = np.asarray(out.affine.detach().cpu().numpy(), dtype=np.float64)
        return np.ascontiguousarray(out.detach().cpu().numpy().astype(np.float32)), affine

    def read(self, value: Any, *, record_id: str = "", base_dir: Path | None = None) -> Sample:
        """Read, preprocess (or fetch from the cache) one volume.

        Raises:
            ReadError: The file is missing, corrupt, not an image, or its geometry is inconsistent.
            ConfigError: The reader options (or the sidecar file) are invalid.
        """
        import torch

        path = resolve_input(value, base_dir, record_id)
        pipeline, cache = self.config()
        files = input_files(path, record_id)
        if not files:
            raise ReadError("the folder is empty", path=path, record=record_id or None)
        try:
            key = f"{content_digest(files)}-{pipeline.digest()}-{self.modality}-v{READER_VERSION}"
        except OSError as exc:
            raise ReadError(f"cannot read the file ({exc})", path=path, record=record_id or None) from exc
        entry = cache.get(key)
        if entry is None:
            hit = "miss"
            volume = load_volume(path, pipeline, record_id)
            try:
                array, affine = self._preprocess(volume, pipeline)
            except (ValueError, RuntimeError) as exc:
                raise ReadError(
                    f"preprocessing failed ({type(exc).__name__}: {exc})", path=path, record=record_id or None
                ) from exc
            meta = {
                "format": volume.meta.get("format", ""),
                "imaging_modality": volume.modality,
                **_geometry(array[0], affine),
                "original_shape": list(volume.array.shape),
                "original_spacing_mm": [round(s, 6) for s in volume.spacing_mm],
                "original_orientation": volume.orientation,
                **{k: v for k, v in volume.meta.items() if k != "format"},
            }
            cache.put(key, array, meta)
        else:
            array, meta, hit = entry
        return Sample(
            id=record_id,
            modality=self.modality,
            data=torch.from_numpy(np.array(array, dtype=np.float32, copy=True)),
            meta={"source": str(path), "record": record_id, **meta, "cache": hit},
        )

    def items(self, folder: Path) -> list[str]:
        """``scibind prepare`` items of a DICOM folder: the folder, or one per series when it mixes several.

        A mixed folder gives one ``<folder>#<first file>`` address per image series (no header value is
        used in it) and each file that looks like DICOM but cannot be parsed as an item of its own, so
        ``prepare`` quarantines it by name while the series go on. Reports and non-DICOM files are left out.
        """
        series, unreadable = series_groups(folder)
        if len(series) <= 1 and not unreadable:
            return [str(folder)]
        return [f"{folder}{SERIES_MEMBER}{files[0].name}" for files in series] + [str(f) for f in unreadable]

    def prepare(self, path: Path, out_dir: Path) -> dict[str, Any]:
        """Read and preprocess ``path``; write ``volume.npy`` (float32 ``[1, I, J, K]``) and its summary."""
        import json

        sample = self.read(str(path), record_id=path.name)
        np.save(out_dir / "volume.npy", sample.data.numpy(), allow_pickle=False)
        summary = {"modality": self.modality, "dtype": "float32", **sample.meta}
        (out_dir / "meta.json").write_text(json.dumps(summary, default=str), encoding="utf-8")
        return summary


class RadiographReader(Reader):
    """A 2D medical image (radiograph, en-face / IR image) -> ``float32`` tensor ``[1, H, W]``.

    DICOM (single frame; ``MONOCHROME1`` is inverted so that higher is brighter; rescale applied) or
    PNG/JPEG/TIFF via Pillow (colour converted to grey). ``meta`` has ``pixel_spacing_mm`` ``(row, col)``
    when the DICOM header gives it (``PixelSpacing`` or ``ImagerPixelSpacing``), else ``None``.

    Args:
        **options: :class:`~scibind_medical_imaging.pipeline.ImagePipeline` options (``size``, ``window``,
            ``normalize``; in a recipe, ``towers.<view>.reader_kwargs``); defaults: min-max to ``[0, 1]``,
            original size.
    """

    modality: ClassVar[str] = "medical_image"

    def __init__(self, **options: Any) -> None:
        self._pipeline: ImagePipeline = validate(ImagePipeline, options, "medical_imaging/radiograph options")

    def config(self) -> ImagePipeline:
        """The validated pipeline options."""
        return self._pipeline

    def _decode(self, path: Path, record_id: str) -> tuple[np.ndarray, dict[str, Any]]:
        if path.suffix.lower() in (".dcm", "") and not path.is_dir():
            from scibind_medical_imaging.dicom import read_dataset

            volume = read_dicom(path, record_id=record_id, assume_spacing_mm=(1.0, 1.0, 1.0))
            if volume.array.shape[2] != 1:
                raise ReadError(
                    f"a multi-frame DICOM ({volume.array.shape[2]} frames) is a volume, not a 2D image; read "
                    "it with medical_imaging/volume (modality ct_volume)",
                    path=path,
                    record=record_id or None,
                )
            array = volume.array[:, :, 0].T  # (i=col, j=row) -> (row, col)
            header = read_dataset(path, pixels=False, record_id=record_id)
            if str(header.get("PhotometricInterpretation", "")).upper() == "MONOCHROME1":
                array = array.max() - array
            spacing = header.get("PixelSpacing") or header.get("ImagerPixelSpacing")
            meta = {
                "format": "dicom",
                "imaging_modality": volume.modality,
                "pixel_spacing_mm": None if spacing is None else [float(s) for s in spacing],
                "dicom": volume.meta.get("dicom", {}),
            }
            return array, meta
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(path) as image:
                mode = image.mode
                if image.mode not in ("L", "I", "I;16", "F"):
                    image = image.convert("L")
                array = np.asarray(image, dtype=np.float32)
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            raise ReadError(
                f"not a readable image ({type(exc).__name__}: {exc})", path=path, record=record_id or None
            ) from exc
        return array, {"format": path.suffix.lower().lstrip("."), "file_mode": mode, "pixel_spacing_mm": None}

    def read(self, value: Any, *, record_id: str = "", base_dir: Path | None = None) -> Sample:
        """Read one 2D image and apply the configured resize/window/normalisation.

        Raises:
            ReadError: The file is missing, corrupt, a volume, or not an image.
        """
        import torch
        import torch.nn.functional as F

        path = resolve_input(value, base_dir, record_id)
        pipeline = self.config()
        array, meta = self._decode(path, record_id)
        original = list(array.shape)
        tensor = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))[None]
        if pipeline.window is not None:
            low, high = pipeline.window
            tensor = (tensor.clamp(low, high) - low) / (high - low)
        elif pipeline.normalize == "minmax":
            low, high = tensor.min(), tensor.max()
            tensor = (tensor - low) / (high - low) if high > low else torch.zeros_like(tensor)
        elif pipeline.normalize == "zscore":
            tensor = (tensor - tensor.mean()) / tensor.std().clamp_min(1e-6)
        if pipeline.size is not None:
            tensor = F.interpolate(tensor[None], size=pipeline.size, mode="bilinear", antialias=True)[0]
            if meta["pixel_spacing_mm"] is not None:
                meta["pixel_spacing_mm"] = [
                    meta["pixel_spacing_mm"][0] * original[0] / pipeline.size[0],
                    meta["pixel_spacing_mm"][1] * original[1] / pipeline.size[1],
                ]
        return Sample(
            id=record_id,
            modality=self.modality,
            data=tensor.contiguous(),
            meta={"source": str(path), "record": record_id, "original_size": original, **meta},
        )
