"""Hook implementations of the ``medical_imaging`` plugin (registrations only; no heavy imports)."""

from __future__ import annotations

from scibind import ModalitySpec, hookimpl
from scibind.hookspecs import Register


@hookimpl
def scibind_register_modalities(register: Register) -> None:
    """The modalities this domain contributes."""
    register(
        ModalitySpec(
            "ct_volume", "A 3D medical volume with voxel spacing in mm", sample_type="Tensor[C,D,H,W] float32"
        )
    )
