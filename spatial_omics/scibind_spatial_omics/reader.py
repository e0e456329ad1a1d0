"""The ``spatial_omics/expression`` reader: one row of an ``.h5ad`` or 10x ``.h5`` -> ``gene_expression``.

A manifest value names a file and a row: ``"cells.h5ad#AAACCTGAGCTAGTGG-1"`` (the row's obs name / barcode)
or ``"cells.h5ad##17"`` (position 17). Relative paths resolve against the manifest's folder. Each file is
opened once per reader and kept open (loaded whole when it fits the memory budget), so reading a record
costs one row lookup, not one file open.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from scibind.data.readers import Reader
from scibind.data.types import Sample
from scibind.errors import ReadError

from scibind_spatial_omics.matrix import DEFAULT_MEMORY_BUDGET_MB, ExpressionMatrix

__all__ = ["ExpressionReader", "split_row_ref"]


def split_row_ref(value: str) -> tuple[str, str]:
    """Split ``"file.h5ad#row"`` into ``("file.h5ad", "row")``.

    The file part ends at the first ``#`` that follows ``.h5ad`` or ``.h5``, so row names may contain ``#``
    (``"x.h5ad##3"`` is position 3).

    Raises:
        ReadError: The value names no row.
    """
    lowered = value.lower()
    for suffix in (".h5ad#", ".h5#"):
        cut = lowered.find(suffix)
        if cut >= 0:
            end = cut + len(suffix) - 1
            row = value[end + 1 :]
            if row:
                return value[:end], row
    raise ReadError(
        f"expected '<file>.h5ad#<obs name>' or '<file>.h5#<barcode>' (or '...##<position>'), got {value!r}"
    )


class ExpressionReader(Reader):
    """Rows of AnnData ``.h5ad`` or 10x ``filtered_feature_bc_matrix.h5`` files as ``float32[G]`` vectors.

    Genes absent from a record's panel (files harmonised with ``union`` panels) are ``NaN``; the gene
    encoders mask them.

    Args:
        use_raw: Read ``.raw`` of h5ad files (e.g. log-normalised values beside a scaled ``X``).
        layer: Read this layer of h5ad files instead of ``X``.
        memory_budget_mb: Files whose matrix fits this are loaded whole on first use.
        genes: Expected gene names, in order. When given, each row is reordered to this panel and a file
            missing one of them is an error naming the genes (harmonise first with
            :func:`scibind_spatial_omics.panels.harmonize`).
    """

    modality: ClassVar[str] = "gene_expression"

    def __init__(
        self,
        use_raw: bool = False,
        layer: str | None = None,
        memory_budget_mb: float = DEFAULT_MEMORY_BUDGET_MB,
        genes: list[str] | None = None,
    ) -> None:
        self.use_raw = use_raw
        self.layer = layer
        self.memory_budget_mb = memory_budget_mb
        self.genes = list(genes) if genes is not None else None
        self._open: dict[Path, tuple[ExpressionMatrix, Any]] = {}

    def matrix(self, path: Path) -> tuple[ExpressionMatrix, Any]:
        """The open matrix of ``path`` and the column order selecting :attr:`genes` (``None`` = all)."""
        key = path.resolve()
        if key not in self._open:
            matrix = ExpressionMatrix.open(
                key, use_raw=self.use_raw, layer=self.layer, memory_budget_mb=self.memory_budget_mb
            )
            order = None
            if self.genes is not None:
                position = {g: i for i, g in enumerate(matrix.var_names)}
                if matrix.gene_ids is not None:
                    position.update({g: i for i, g in enumerate(matrix.gene_ids)})
                missing = [g for g in self.genes if g not in position]
                if missing:
                    raise ReadError(
                        f"{len(missing)} of the {len(self.genes)} expected genes are not in the file "
                        f"(e.g. {missing[:5]}); harmonise the panels first "
                        "(scibind_spatial_omics.panels.harmonize) or fix the gene list",
                        path=path,
                    )
                order = [position[g] for g in self.genes]
            self._open[key] = (matrix, order)
        return self._open[key]

    def read(self, value: Any, *, record_id: str = "", base_dir: Path | None = None) -> Sample:
        """Read the row named by ``value``.

        Raises:
            ReadError: Malformed value, unreadable file, unknown row or missing genes.
        """
        import torch

        file_part, row_key = split_row_ref(str(value)) if "#" in str(value) else (str(value), "")
        path = Path(file_part).expanduser()
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        try:
            if not row_key:
                raise ReadError(
                    "the value names a file but no row; "
                    "write '<file>.h5ad#<obs name>' or '<file>##<position>'",
                    path=path,
                )
            matrix, order = self.matrix(path)
            row = matrix.row(matrix.index_of(row_key))
        except ReadError as exc:
            raise ReadError(exc.reason, path=exc.path or path, record=record_id or row_key or None) from exc
        if order is not None:
            row = row[order]
        return Sample(
            id=record_id,
            modality=self.modality,
            data=torch.from_numpy(row),
            meta={
                "source": str(path),
                "record": record_id,
                "row": row_key,
                "n_genes": int(row.shape[0]),
                "panel": matrix.provenance.get("panel", {}).get("name"),
            },
        )

    def describe(self, path: Path) -> dict[str, Any]:
        """Shape, sparsity, gene naming and the plugin's provenance record of a matrix file."""
        matrix, _ = self.matrix(Path(path))
        return {
            "modality": self.modality,
            "source": str(path),
            "n_obs": matrix.n_obs,
            "n_vars": matrix.n_vars,
            "sparse": matrix.sparse,
            "in_memory": matrix.in_memory,
            "has_gene_ids": matrix.gene_ids is not None,
            "first_genes": matrix.var_names[:5],
            "provenance": matrix.provenance,
        }
