"""Every domain package installs, loads through its entry point and registers its modalities."""

from __future__ import annotations

import subprocess
import sys

import pytest
import scibind
from scibind.plugins import reset_plugins

DOMAINS = {
    "pathology": ("scibind_pathology.plugin", {"wsi_tile", "wsi_bag"}),
    "molecules": ("scibind_molecules.plugin", {"molecule_graph"}),
    "spatial_omics": ("scibind_spatial_omics.plugin", {"gene_expression"}),
    "medical_imaging": ("scibind_medical_imaging.plugin", {"ct_volume"}),
    "cell_painting": ("scibind_cell_painting.plugin", {"cell_painting_image"}),
}
HEAVY = ("torch", "openslide", "rdkit", "monai", "scanpy", "anndata", "torch_geometric", "transformers")


@pytest.fixture(autouse=True)
def _fresh_plugins():
    reset_plugins()
    yield
    reset_plugins()


@pytest.mark.parametrize("plugin", sorted(DOMAINS))
def test_domain_plugin_loads_and_registers_modalities(plugin):
    state = scibind.load_plugins(strict=True)
    record = state.records[plugin]
    assert record.status == "loaded", record.error
    assert DOMAINS[plugin][1] <= set(record.registered["modalities"])
    assert record.distribution.startswith("scibind-")


@pytest.mark.parametrize("plugin", sorted(DOMAINS))
def test_domain_plugin_module_imports_no_heavy_library(plugin):
    module = DOMAINS[plugin][0]
    code = f"import sys, {module}; print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
