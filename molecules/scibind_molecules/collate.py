"""Collate of the ``molecule_graph`` modality: a list of PyG ``Data`` -> one ``Batch``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from scibind.errors import DataError

__all__ = ["collate_graphs"]


def collate_graphs(items: Sequence[Any]) -> Any:
    """Batch molecule graphs with ``torch_geometric.data.Batch.from_data_list``.

    Raises:
        DataError: An item is not a PyG ``Data``.
    """
    from torch_geometric.data import Batch, Data

    for i, item in enumerate(items):
        if not isinstance(item, Data):
            raise DataError(
                f"molecule_graph collate: item {i} is a {type(item).__name__}, expected torch_geometric Data "
                "(read molecules with the molecules/molecule reader)"
            )
    return Batch.from_data_list(list(items))
