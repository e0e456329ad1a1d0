"""Text descriptions of the PBMC cell types of ``pbmc68k_reduced`` (``obs['bulk_labels']``).

Each type has several phrasings naming the type, its lineage and canonical marker genes; records get one
at random, and zero-shot prompts use the type names with :data:`PROMPT_TEMPLATES`.
"""

from __future__ import annotations

__all__ = ["CELL_TYPE_DESCRIPTIONS", "DESCRIPTION_TEMPLATES", "PROMPT_TEMPLATES", "describe"]

CELL_TYPE_DESCRIPTIONS: dict[str, str] = {
    "CD14+ Monocyte": "classical monocyte of the myeloid lineage expressing CD14, LYZ and S100A8",
    "Dendritic": "dendritic antigen-presenting cell expressing HLA-DR, FCER1A and CST3",
    "CD19+ B": "B lymphocyte expressing CD19, MS4A1 and CD79A",
    "CD56+ NK": "natural killer cell expressing NCAM1 (CD56), NKG7 and GNLY",
    "CD4+/CD25 T Reg": "regulatory T cell, CD4-positive and CD25-positive, expressing FOXP3 and IL2RA",
    "CD8+ Cytotoxic T": "cytotoxic T lymphocyte expressing CD8A, GZMB and PRF1",
    "CD8+/CD45RA+ Naive Cytotoxic": (
        "naive cytotoxic T cell, CD8-positive and CD45RA-positive, expressing CCR7"
    ),
    "CD4+/CD45RO+ Memory": "memory helper T cell, CD4-positive and CD45RO-positive, expressing IL7R",
    "CD4+/CD45RA+/CD25- Naive T": "naive helper T cell, CD4-positive, CD45RA-positive and CD25-negative",
    "CD34+": "hematopoietic progenitor cell expressing CD34",
}
"""Cell type (as in ``bulk_labels``) -> a description with markers."""

DESCRIPTION_TEMPLATES: tuple[str, ...] = (
    "a {name} cell: {description}",
    "{name}, a {description}",
    "single-cell profile of a {name} ({description})",
    "peripheral blood {name}; {description}",
)
"""Phrasings of a record's caption (``name`` = the cell type, ``description`` = its markers)."""

PROMPT_TEMPLATES: tuple[str, ...] = ("a {} cell", "{}", "peripheral blood {}")
"""Zero-shot prompt templates (``{}`` = the cell type name)."""


def describe(cell_type: str, phrasing: int) -> str:
    """Caption of a cell of ``cell_type`` in phrasing ``phrasing`` (modulo the number of templates)."""
    description = CELL_TYPE_DESCRIPTIONS.get(cell_type, f"{cell_type} blood cell")
    template = DESCRIPTION_TEMPLATES[phrasing % len(DESCRIPTION_TEMPLATES)]
    return template.format(name=cell_type, description=description)
