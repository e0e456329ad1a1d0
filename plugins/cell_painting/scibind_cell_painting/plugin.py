"""Hook implementations of the ``cell_painting`` plugin (registrations only; no heavy imports)."""

from __future__ import annotations

from scibind import ModalitySpec, hookimpl
from scibind.hookspecs import Register


@hookimpl
def scibind_register_modalities(register: Register) -> None:
    """The modalities this domain contributes."""
    register(
        ModalitySpec(
            "cell_painting_image",
            "A multi-channel Cell Painting field with channel names",
            sample_type="Tensor[C,H,W] float32",
        )
    )
