"""scibind-spatial-omics: Gene panels and spatial transcriptomics on anndata/scanpy."""

__version__ = "0.1.0"
