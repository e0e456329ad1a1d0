"""Hook implementations of the ``spatial_omics`` plugin (registrations only; no heavy imports)."""

from __future__ import annotations

from scibind import ModalitySpec, hookimpl
from scibind.hookspecs import Register


@hookimpl
def scibind_register_modalities(register: Register) -> None:
    """The modalities this domain contributes."""
    register(
        ModalitySpec(
            "gene_expression",
            "Expression of a gene panel for one cell or spot",
            sample_type="Tensor[G] float32",
        )
    )
