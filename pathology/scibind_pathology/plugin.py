"""Hook implementations of the ``pathology`` plugin (registrations only; no heavy imports)."""

from __future__ import annotations

from scibind import ModalitySpec, hookimpl
from scibind.hookspecs import Register


@hookimpl
def scibind_register_modalities(register: Register) -> None:
    """The modalities this domain contributes."""
    register(
        ModalitySpec(
            "wsi_tile",
            "One tile of a whole-slide image at a known µm/px",
            sample_type="Tensor[3,H,W] float32",
        )
    )
    register(
        ModalitySpec(
            "wsi_bag",
            "A slide as a bag of tile features with coordinates",
            sample_type="dict(features=Tensor[N,D], coords=Tensor[N,2])",
        )
    )
