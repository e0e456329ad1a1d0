"""Hook implementations of the ``molecules`` plugin (registrations only; no heavy imports)."""

from __future__ import annotations

from scibind import ModalitySpec, hookimpl
from scibind.hookspecs import Register


@hookimpl
def scibind_register_modalities(register: Register) -> None:
    """The modalities this domain contributes."""
    register(
        ModalitySpec(
            "molecule_graph",
            "A molecule as an atom/bond graph (RDKit -> PyG)",
            sample_type="torch_geometric.data.Data",
        )
    )
