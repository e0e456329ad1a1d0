"""Hook implementations of the ``pathology`` plugin (registrations only; no heavy imports)."""

from __future__ import annotations

from collections.abc import Sequence

from scibind import (
    DatasetSpec,
    EncoderSpec,
    HeadSpec,
    ModalitySpec,
    ReaderSpec,
    RecipeSpec,
    hookimpl,
)
from scibind.hookspecs import Register

scibind_api_version = 1

OPENSLIDE = ("openslide-python>=1.3", "openslide-bin>=4.0")
SLIDE_PATTERNS = (
    "*.svs",
    "*.tif",
    "*.tiff",
    "*.ndpi",
    "*.mrxs",
    "*.scn",
    "*.svslide",
    "*.bif",
    "*.vms",
    "*.vmu",
)
"""Kept equal to :data:`scibind_pathology.slide.SLIDE_PATTERNS` (that module imports numpy, so not here)."""


@hookimpl
def scibind_register_modalities(register: Register) -> None:
    """The modalities this domain contributes."""
    register(
        ModalitySpec(
            "wsi_tile",
            "One tile of a whole-slide image at a known µm/px",
            sample_type="Tensor[3,H,W] float32",
        )
    )
    register(
        ModalitySpec(
            "wsi_bag",
            "A slide as a bag of tile features with coordinates",
            sample_type="dict(features=Tensor[N,D], coords=Tensor[N,2])",
            collate="scibind_pathology.bags:collate_bags",
        )
    )


@hookimpl
def scibind_register_readers(register: Register) -> None:
    """Slides (every OpenSlide format) and feature files as bags; single tiles."""
    register(
        ReaderSpec(
            "wsi",
            "Whole-slide images (svs, pyramidal tif, ndpi, mrxs, scn, svslide, bif, vms) and TRIDENT/CLAM "
            "feature .h5 files as bags of tile features; prepare = tissue mask + tiling (+ features)",
            modality="wsi_bag",
            factory="scibind_pathology.readers:WSIReader",
            patterns=SLIDE_PATTERNS,
            requires=OPENSLIDE,
            priority=-20,
            option_groups=("tiling",),
        )
    )
    register(
        ReaderSpec(
            "tile",
            "One tile at an exact µm/px from {slide, x, y} (columns <view>.slide/.x/.y) or a PNG/JPEG tile",
            modality="wsi_tile",
            factory="scibind_pathology.readers:TileReader",
            requires=OPENSLIDE,
        )
    )


@hookimpl
def scibind_choose_reader(
    path: str, modality: str | None, candidates: Sequence[ReaderSpec]
) -> ReaderSpec | None:
    """Open a ``.tif``/``.tiff`` as a slide when OpenSlide recognises it (tiled pyramid); else abstain."""
    mine = [c for c in candidates if c.name == "pathology/wsi"]
    if not mine or not path.lower().endswith((".tif", ".tiff")):
        return None
    try:
        import openslide
    except ImportError:
        return None
    try:
        vendor = openslide.OpenSlide.detect_format(path)
    except Exception:  # unreadable: let another reader report it
        return None
    return mine[0] if vendor is not None else None


@hookimpl
def scibind_register_encoders(register: Register) -> None:
    """Tile encoders (CNN, ViT, local pretrained backbones) and slide encoders (ABMIL, prototypes)."""
    tiles = [
        ("tiny", "Two-stage CNN of width 8 on RGB tiles, for tests and the demo", 32, "tiny"),
        ("cnn", "Residual CNN on RGB tiles (trainable; loads safetensors)", 256, "tile_cnn"),
        ("vit", "Small ViT on RGB tiles (pure torch; loads safetensors)", 256, "tile_vit"),
        ("tiny-vit", "One-layer ViT on 32-px tiles, for tests", 32, "tiny_vit"),
        (
            "pretrained",
            "Your backbone from a local folder (config.json + model.safetensors) with its preprocessing; "
            "embed_dim from config.json",
            0,
            "pretrained",
        ),
    ]
    for name, description, dim, attr in tiles:
        register(
            EncoderSpec(
                name,
                description,
                modality="wsi_tile",
                embed_dim=dim,
                factory=f"scibind_pathology.encoders:{attr}",
                pretrained=("local-safetensors",) if name in ("cnn", "vit", "pretrained") else (),
            )
        )
    bags = [
        (
            "abmil",
            "Gated attention MIL pooling of tile features (CLAM/TRIDENT slide head)",
            256,
            "ABMILEncoder",
        ),
        ("tiny-abmil", "ABMIL of width 16, for tests", 16, "tiny_abmil"),
        (
            "prototype",
            "Prototype pooling of tile features (SongCi), attention over prototypes",
            256,
            "PrototypeEncoder",
        ),
        (
            "tiny-prototype",
            "Prototype pooling with 4 prototypes of width 16, for tests",
            16,
            "tiny_prototype",
        ),
    ]
    for name, description, dim, attr in bags:
        register(
            EncoderSpec(
                name, description, modality="wsi_bag", embed_dim=dim, factory=f"scibind_pathology.bags:{attr}"
            )
        )


@hookimpl
def scibind_register_heads(register: Register) -> None:
    """Slide classification from cached tile features."""
    register(
        HeadSpec(
            "abmil-classifier",
            "Gated attention MIL classifier trained on cached tile features (cross-validated accuracy)",
            factory="scibind_pathology.heads:ABMILClassifierTask",
            task="slide_classification",
        )
    )


@hookimpl
def scibind_register_datasets(register: Register) -> None:
    """Synthetic slides (real pyramidal TIFFs) with diagnosis reports, for the demo and tests."""
    register(
        DatasetSpec(
            "synthetic-slides",
            "Pyramidal JPEG TIFF slides whose tissue texture depends on a diagnosis, with report sentences",
            factory="scibind_pathology.synthetic:make_synthetic_slides",
            requires=OPENSLIDE,
        )
    )


@hookimpl
def scibind_register_model_configs(register: Register) -> None:
    """The pathology demo: slide <-> report alignment."""
    register(
        RecipeSpec(
            "slide-report-clip",
            "Synthetic slides (ABMIL over tile features) <-> report text, CLIP; retrieval and zero-shot "
            "diagnosis",
            source="scibind_pathology:recipes/slide-report-clip.yaml",
            demo=True,
        )
    )


@hookimpl
def scibind_register_commands(cli: object) -> None:
    """``scibind pathology mil-train`` and ``scibind pathology heatmap``."""
    from scibind_pathology.cli import app

    cli.add_typer(app, name="pathology")  # type: ignore[attr-defined]
