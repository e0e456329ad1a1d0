"""Hook implementations of the ``cell_painting`` plugin (registrations only; no heavy imports).

The components live in :mod:`scibind_cell_painting.reader` (fields),
:mod:`~scibind_cell_painting.encoder` (channel-wise image encoder),
:mod:`~scibind_cell_painting.profile_encoder`, :mod:`~scibind_cell_painting.heads` (mAP, batch effects)
and :mod:`~scibind_cell_painting.synthetic` (demo plates); they are imported only when built.
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
"""The scibind plugin API this plugin was written for."""

TIFF = ("tifffile>=2023.7",)
SKLEARN = ("scikit-learn>=1.3",)
MOLECULES = ("scibind-molecules>=0.1",)
"""CLOOME recipes use the molecules plugin's reader and encoders (never imported by this plugin)."""


@hookimpl
def scibind_register_modalities(register: Register) -> None:
    """The modalities this domain contributes."""
    register(
        ModalitySpec(
            "cell_painting_image",
            "A multi-channel Cell Painting field with channel names",
            sample_type="{'pixels': Tensor[C,H,W] float32, 'channels': Tensor[C] int64 (ids of CHANNELS)}",
            collate="scibind_cell_painting.collate:collate_fields",
        )
    )


@hookimpl
def scibind_register_readers(register: Register) -> None:
    """Cell Painting fields (per-channel files of a manifest row, or a multi-channel (OME-)TIFF) and cells."""
    register(
        ReaderSpec(
            "field",
            "Cell Painting field: {channel: TIFF} manifest columns or a multi-channel (OME-)TIFF; named "
            "channels, bit-depth checks, illumination correction, per-channel normalisation",
            modality="cell_painting_image",
            factory="scibind_cell_painting.reader:FieldReader",
            patterns=("*.ome.tif", "*.ome.tiff"),
            requires=TIFF,
        )
    )
    register(
        ReaderSpec(
            "cell",
            "One cell of a Cell Painting field: a square crop of every channel around the nucleus centre "
            "<view>.y_px / <view>.x_px (single_cell_manifest writes them); set crop_px",
            modality="cell_painting_image",
            factory="scibind_cell_painting.cell_reader:CellReader",
            priority=-1,  # manifest values only; cell_painting/field stays the modality's default reader
            requires=TIFF,
        )
    )


@hookimpl
def scibind_register_encoders(register: Register) -> None:
    """The channel-wise image encoder and the profile MLP, each with a tiny variant."""
    register(
        EncoderSpec(
            "channelwise",
            "CellCLIP-style: shared per-channel CNN + channel embeddings + attention pooling over channels",
            modality="cell_painting_image",
            embed_dim=256,
            factory="scibind_cell_painting.encoder:ChannelwiseEncoder",
            pretrained=("local-safetensors",),
        )
    )
    register(
        EncoderSpec(
            "tiny",
            "Channel-wise encoder with 16-wide tokens and one CNN stage, for tests and CPU demos",
            modality="cell_painting_image",
            embed_dim=32,
            factory="scibind_cell_painting.encoder:tiny_channelwise",
        )
    )
    register(
        EncoderSpec(
            "profile-mlp",
            "MLP over morphological profile features (pycytominer columns) with feature dropout",
            modality="vector",
            embed_dim=256,
            factory="scibind_cell_painting.profile_encoder:ProfileEncoder",
        )
    )
    register(
        EncoderSpec(
            "tiny-profile-mlp",
            "ProfileEncoder of width 32, for tests",
            modality="vector",
            embed_dim=32,
            factory="scibind_cell_painting.profile_encoder:tiny_profile",
        )
    )


@hookimpl
def scibind_register_objectives(register: Register) -> None:
    """CLOOME's InfoLOOB loss with modern-Hopfield retrieval."""
    register(
        ObjectiveSpec(
            "infoloob",
            "CLOOME: InfoLOOB (positives left out of the denominator) over Hopfield-retrieved embeddings",
            factory="scibind_cell_painting.infoloob:InfoLOOBObjective",
        )
    )


@hookimpl
def scibind_register_heads(register: Register) -> None:
    """Retrieval mAP (copairs protocol) and plate / batch-effect diagnostics."""
    register(
        HeadSpec(
            "map",
            "Mean average precision of same-label retrieval (replicates, compounds, MOAs), p-values, "
            "fraction retrieved; controls as negatives, diffby, well-level aggregation, cross-modal",
            factory="scibind_cell_painting.heads:MAPTask",
            task="map",
        )
    )
    register(
        HeadSpec(
            "batch-effects",
            "Plate / batch effects: kNN plate prediction, silhouette, within vs across plate mAP",
            factory="scibind_cell_painting.heads:BatchEffectsTask",
            task="batch_effects",
            requires=SKLEARN,
        )
    )


@hookimpl
def scibind_register_model_configs(register: Register) -> None:
    """The demo recipe, its single-cell variant, profiles <-> text and CLOOME profile / image <-> molecule."""
    register(
        RecipeSpec(
            "synthetic-plates-clip",
            "Five-channel synthetic plates <-> perturbation text, multi-positive CLIP, mAP; CPU",
            source="scibind_cell_painting:recipes/synthetic-plates-clip.yaml",
            demo=True,
            requires=TIFF,
        )
    )
    register(
        RecipeSpec(
            "synthetic-cells-clip",
            "Single-cell crops (nuclei found on DNA) of synthetic plates <-> perturbation text; mAP of cells "
            "and of wells (mean cell embedding per well); CPU",
            source="scibind_cell_painting:recipes/synthetic-cells-clip.yaml",
            requires=TIFF,
        )
    )
    register(
        RecipeSpec(
            "profiles-text-clip",
            "Per-well profiles <-> perturbation text (set data.train to a profiles_manifest), mAP",
            source="scibind_cell_painting:recipes/profiles-text-clip.yaml",
        )
    )
    register(
        RecipeSpec(
            "cloome-profiles",
            "CLOOME: per-well profiles <-> molecular structures (molecules plugin), InfoLOOB + Hopfield, "
            "molecule<->profile mAP on held-out compounds; CPU",
            source="scibind_cell_painting:recipes/cloome-profiles.yaml",
            requires=MOLECULES,
        )
    )
    register(
        RecipeSpec(
            "cloome-images",
            "CLOOME: five-channel synthetic fields <-> molecular structures (molecules plugin), InfoLOOB, "
            "molecule<->image mAP on held-out compounds vs chance; CPU",
            source="scibind_cell_painting:recipes/cloome-images.yaml",
            requires=MOLECULES,
        )
    )


@hookimpl
def scibind_register_datasets(register: Register) -> None:
    """Synthetic Cell Painting plates written as real TIFF files with a plate map."""
    register(
        DatasetSpec(
            "synthetic-plates",
            "Five-channel Harmony-named TIFF fields, plate map and compound table; morphology follows the "
            "compound (or scaffold + side chain), with plate effects; held-out compounds; fields or cells",
            factory="scibind_cell_painting.synthetic:make_synthetic_plates",
            requires=TIFF,
        )
    )
    register(
        DatasetSpec(
            "synthetic-cloome",
            "Per-well profiles with SMILES: scaffold = MOA, side chain adds its own morphology; whole "
            "compounds held out (CLOOME)",
            factory="scibind_cell_painting.cloome:make_synthetic_cloome",
        )
    )
