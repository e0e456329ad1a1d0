"""Preprocessing pipelines as data: orientation, resampling (mm), CT windows (HU), crop/pad, normalisation.

A :class:`VolumePipeline` is validated configuration (pydantic). :func:`build_transforms` turns it into a
MONAI ``Compose`` of dictionary transforms over the key ``"image"`` (a channel-first ``MetaTensor`` carrying
its affine), so the geometry travels with the voxels exactly as in MONAI's own pipelines. The pipeline's
:meth:`VolumePipeline.digest` is part of every cache key: changing any option never serves stale volumes.

The options are the reader's keyword arguments: ``towers.<view>.reader_kwargs`` in a recipe, ``scibind prepare
--set reader.medical_imaging/volume.<option>=...``, or Python; unset options keep their defaults.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from scibind.errors import ConfigError

__all__ = ["ImagePipeline", "VolumePipeline", "build_transforms", "validate"]


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def digest(self) -> str:
        """A stable hash of every option (part of cache keys)."""
        text = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(f"{type(self).__name__}:{text}".encode()).hexdigest()[:16]


def _triple(value: Any, name: str) -> Any:
    if value is None:
        return None
    if isinstance(value, (int, float)):
        value = [value] * 3
    if len(value) != 3 or any(float(v) <= 0 for v in value):
        raise ValueError(f"{name} needs three positive numbers (x, y, z), got {value!r}")
    return tuple(value)


class VolumePipeline(_Options):
    """Options of the 3D volume reader (``medical_imaging/volume``), in the order they are applied."""

    volume_index: int | None = Field(None, description="Volume of a 4D NIfTI to read (time/channel index).")
    assume_spacing_mm: tuple[float, float, float] | None = Field(
        None, description="Voxel size for DICOM without geometry; None makes missing geometry an error."
    )
    tiff_spacing_mm: tuple[float, float, float] | None = Field(
        None, description="Voxel size (x, y, z) of TIFF stacks, which carry no geometry."
    )
    orientation: str | None = Field("RAS", description="Reorient to these axis codes (MONAI Orientationd).")
    spacing_mm: tuple[float, float, float] | None = Field(
        None, description="Resample to this voxel size in mm (MONAI Spacingd, trilinear); None keeps it."
    )
    window_hu: tuple[float, float] | None = Field(
        None, description="Clip to [low, high] (HU for CT) and scale to [0, 1] (ScaleIntensityRanged)."
    )
    normalize: Literal["zscore", "minmax"] | None = Field(
        None, description="Intensity normalisation after windowing: per-volume z-score or min-max."
    )
    roi_size: tuple[int, int, int] | None = Field(
        None, description="Centre crop / zero pad to this shape in voxels (ResizeWithPadOrCropd)."
    )

    @field_validator("spacing_mm", "assume_spacing_mm", "tiff_spacing_mm", mode="before")
    @classmethod
    def _spacing(cls, value: Any, info: Any) -> Any:
        return _triple(value, info.field_name)

    @field_validator("roi_size", mode="before")
    @classmethod
    def _roi(cls, value: Any) -> Any:
        value = _triple(value, "roi_size")
        return None if value is None else tuple(int(v) for v in value)

    @field_validator("window_hu")
    @classmethod
    def _window(cls, value: Any) -> Any:
        if value is not None and not value[0] < value[1]:
            raise ValueError(f"window_hu needs low < high, got {value!r}")
        return value

    @field_validator("orientation")
    @classmethod
    def _axcodes(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.upper()
        pairs = ("LR", "AP", "SI")
        if len(value) != 3 or sorted(next(i for i, p in enumerate(pairs) if c in p) for c in value) != [
            0,
            1,
            2,
        ]:
            raise ValueError(f"orientation must be three axis codes such as 'RAS' or 'LPS', got {value!r}")
        return value


class ImagePipeline(_Options):
    """Options of the 2D image reader (``medical_imaging/radiograph``)."""

    size: tuple[int, int] | None = Field(None, description="Resize to (H, W) pixels (bilinear, antialiased).")
    window: tuple[float, float] | None = Field(
        None, description="Clip to [low, high] (stored values after rescale) and scale to [0, 1]."
    )
    normalize: Literal["zscore", "minmax"] | None = Field(
        "minmax", description="Per-image normalisation (applied when no window is given)."
    )


def validate(model: type[_Options], options: dict[str, Any], where: str) -> Any:
    """Build ``model`` from ``options``; errors name ``where`` and every bad option.

    Raises:
        ConfigError: An option is unknown or invalid.
    """
    try:
        return model.model_validate(options)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        valid = ", ".join(model.model_fields)
        raise ConfigError(f"{where}: {problems} (valid options: {valid})") from exc


def build_transforms(pipeline: VolumePipeline) -> Any:
    """The MONAI ``Compose`` of dictionary transforms over ``"image"`` for ``pipeline``."""
    from monai import transforms as mt

    keys = ["image"]
    steps: list[Any] = []
    if pipeline.orientation:
        steps.append(
            mt.Orientationd(keys, axcodes=pipeline.orientation, labels=(("L", "R"), ("P", "A"), ("I", "S")))
        )
    if pipeline.spacing_mm:
        steps.append(mt.Spacingd(keys, pixdim=pipeline.spacing_mm, mode="bilinear", padding_mode="border"))
    if pipeline.window_hu:
        low, high = pipeline.window_hu
        steps.append(mt.ScaleIntensityRanged(keys, a_min=low, a_max=high, b_min=0.0, b_max=1.0, clip=True))
    if pipeline.normalize == "zscore":
        steps.append(mt.NormalizeIntensityd(keys))
    elif pipeline.normalize == "minmax":
        steps.append(mt.ScaleIntensityd(keys, minv=0.0, maxv=1.0))
    if pipeline.roi_size:
        steps.append(mt.ResizeWithPadOrCropd(keys, spatial_size=pipeline.roi_size, mode="constant"))
    return mt.Compose(steps)
