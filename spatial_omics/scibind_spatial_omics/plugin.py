"""Hook implementations of the ``spatial_omics`` plugin (registrations only; no heavy imports)."""

from __future__ import annotations

from scibind import DatasetSpec, EncoderSpec, HeadSpec, ModalitySpec, ReaderSpec, RecipeSpec, hookimpl
from scibind.hookspecs import Register

scibind_api_version = 1
"""The scibind plugin API this plugin was written for."""

PKG = "scibind_spatial_omics"


@hookimpl
def scibind_register_modalities(register: Register) -> None:
    """The modalities this domain contributes."""
    register(
        ModalitySpec(
            "gene_expression",
            "Expression of a gene panel for one cell or spot (NaN = gene not measured)",
            sample_type="Tensor[G] float32",
        )
    )


@hookimpl
def scibind_register_readers(register: Register) -> None:
    """Rows of AnnData .h5ad and 10x .h5 matrices."""
    register(
        ReaderSpec(
            "expression",
            "One row of an AnnData .h5ad or 10x filtered_feature_bc_matrix.h5 ('file.h5ad#<obs name>')",
            modality="gene_expression",
            factory=f"{PKG}.reader:ExpressionReader",
            patterns=("*.h5ad", "*_feature_bc_matrix.h5"),
            requires=("h5py>=3.9",),
        )
    )


@hookimpl
def scibind_register_encoders(register: Register) -> None:
    """Gene MLP over a fixed panel and gene-token set transformer over any panel, each with a tiny variant."""
    register(
        EncoderSpec(
            "gene-mlp",
            "MLP over a fixed gene panel (NaN = not measured)",
            modality="gene_expression",
            embed_dim=256,
            factory=f"{PKG}.encoders:GeneMLPEncoder",
        )
    )
    register(
        EncoderSpec(
            "tiny-gene-mlp",
            "One-hidden-layer gene MLP, for tests and demos",
            modality="gene_expression",
            embed_dim=32,
            factory=f"{PKG}.encoders:tiny_gene_mlp",
        )
    )
    register(
        EncoderSpec(
            "gene-set",
            "Gene-token set transformer (gene embedding + value, latent pooling); any panel of its genes",
            modality="gene_expression",
            embed_dim=256,
            factory=f"{PKG}.encoders:GeneSetEncoder",
        )
    )
    register(
        EncoderSpec(
            "tiny",
            "Tiny gene-token set transformer, for tests",
            modality="gene_expression",
            embed_dim=32,
            factory=f"{PKG}.encoders:tiny_gene_set",
        )
    )


@hookimpl
def scibind_register_heads(register: Register) -> None:
    """HEST-bench expression prediction, batch mixing, and the kNN-on-expression baseline."""
    register(
        HeadSpec(
            "expression-prediction",
            "Ridge / PCA+ridge from embeddings to HVG expression; Pearson per gene (HEST-bench)",
            factory=f"{PKG}.prediction:ExpressionPredictionTask",
            task="regression",
        )
    )
    register(
        HeadSpec(
            "batch-mixing",
            "iLISI batch mixing per view and per-batch retrieval R@k",
            factory=f"{PKG}.mixing:BatchMixingTask",
            task="batch_mixing",
        )
    )
    register(
        HeadSpec(
            "expression-knn",
            "kNN cell typing on the PCA of the eval expression rows (baseline for zero-shot)",
            factory=f"{PKG}.baseline:ExpressionKNNTask",
            task="knn",
        )
    )


@hookimpl
def scibind_register_model_configs(register: Register) -> None:
    """The PBMC expression <-> cell-type text demo."""
    register(
        RecipeSpec(
            "pbmc-celltypes",
            "pbmc68k_reduced expression <-> cell-type text, zero-shot cell typing vs kNN on expression; CPU",
            source=f"{PKG}:recipes/pbmc-celltypes.yaml",
            demo=True,
        )
    )
    register(
        RecipeSpec(
            "visium-spots",
            "Visium spot H&E patches <-> expression (CLIP), retrieval, expression prediction, batch mixing",
            source=f"{PKG}:recipes/visium-spots.yaml",
        )
    )


@hookimpl
def scibind_register_datasets(register: Register) -> None:
    """Dataset generators writing real h5ad / PNG files and a manifest."""
    register(
        DatasetSpec(
            "pbmc68k-celltypes",
            "scanpy's pbmc68k_reduced (copied as-is; read its .raw) + cell-type captions",
            factory=f"{PKG}.pbmc:make_pbmc_celltypes",
        )
    )
    register(
        DatasetSpec(
            "visium-spots",
            "Spot/cell <-> H&E patch pairs: Space Ranger, spatial h5ad or Xenium folders (build_spot_pairs)",
            factory=f"{PKG}.pairs:make_visium_spots",
        )
    )
