"""The core is domain-agnostic: it never imports a domain package or a domain's heavy library."""

from __future__ import annotations

import ast
from pathlib import Path

import scibind

FORBIDDEN = {
    "openslide",
    "rdkit",
    "monai",
    "scanpy",
    "anndata",
    "torch_geometric",
    "pydicom",
    "nibabel",
    "scibind_pathology",
    "scibind_molecules",
    "scibind_spatial_omics",
    "scibind_medical_imaging",
    "scibind_cell_painting",
    "scibind_template",
    "scibind_testkit",
}
# The embedding store's AnnData export is the one place the core touches anndata, inside a function.
ALLOWED_LAZY = {("store", "anndata")}


def _imports(path: Path) -> list[tuple[str, bool]]:
    """(top-level module, imported at module level?) for every import in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top_level = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name.split(".")[0], id(node) in top_level) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module.split(".")[0], id(node) in top_level))
    return found


def test_core_imports_no_domain_package():
    root = Path(scibind.__file__).parent
    offenders = []
    for path in root.rglob("*.py"):
        package = path.relative_to(root).parts[0]
        for module, at_top in _imports(path):
            if module in FORBIDDEN and (at_top or (package, module) not in ALLOWED_LAZY):
                offenders.append(f"{path.relative_to(root)} imports {module}")
    assert offenders == []
