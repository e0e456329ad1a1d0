"""The in-memory form of a decoded medical image: voxels, voxel-to-world affine (RAS, mm) and safe metadata.

Every reader of this plugin returns a :class:`Volume` whose array is indexed ``(i, j, k)`` like nibabel and
MONAI (for DICOM: ``i`` = column, ``j`` = row, ``k`` = slice) and whose ``affine`` maps ``(i, j, k, 1)`` to
RAS+ world coordinates in millimetres. Rescale slope/intercept are already applied, so CT values are HU.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["LPS_TO_RAS", "Volume", "axcodes", "spacing_from_affine"]

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
"""DICOM patient coordinates are LPS+; nibabel and MONAI use RAS+: flip the first two world axes."""


@dataclass
class Volume:
    """A decoded image with its geometry.

    Attributes:
        array: ``float32`` voxels ``[I, J, K]`` (3D; a 2D image has ``K == 1``) or ``[I, J, K, T]`` for a
            4D series before a volume is chosen.
        affine: ``float64[4, 4]`` voxel index -> RAS+ world (mm).
        modality: Imaging modality (DICOM ``Modality`` such as ``CT``, ``MR``, ``OPT``; ``""`` if unknown).
        meta: Technical, PHI-free facts about the file (format, rescale, frame counts); never header values
            that identify a person, place, date or study.
    """

    array: np.ndarray
    affine: np.ndarray
    modality: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def spacing_mm(self) -> tuple[float, float, float]:
        """Voxel size along ``i``, ``j``, ``k`` in millimetres (from the affine)."""
        return spacing_from_affine(self.affine)

    @property
    def orientation(self) -> str:
        """Anatomical direction of increasing ``i``, ``j``, ``k`` (nibabel axis codes, e.g. ``"RAS"``)."""
        return axcodes(self.affine)


def spacing_from_affine(affine: np.ndarray) -> tuple[float, float, float]:
    """Column norms of the affine's 3x3 part: the voxel size in mm along each array axis."""
    norms = np.sqrt((np.asarray(affine, dtype=np.float64)[:3, :3] ** 2).sum(axis=0))
    return (float(norms[0]), float(norms[1]), float(norms[2]))


def axcodes(affine: np.ndarray) -> str:
    """Nibabel axis codes of ``affine`` (``"RAS"``, ``"LPS"``, ...)."""
    import nibabel as nib

    return "".join(str(c) for c in nib.aff2axcodes(np.asarray(affine, dtype=np.float64)))
