"""Hook implementations of the ``medical_imaging`` plugin (registrations only; no heavy imports)."""

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

MONAI = "monai>=1.3"
PKG = "scibind_medical_imaging"


@hookimpl
def scibind_register_modalities(register: Register) -> None:
    """3D volumes and 2D medical images."""
    register(
        ModalitySpec(
            "ct_volume",
            "A 3D medical volume (CT, MR, OCT), channel first, reoriented/resampled by the reader; "
            "meta has spacing_mm, orientation and the RAS affine",
            sample_type="Tensor[C,I,J,K] float32",
        )
    )
    register(
        ModalitySpec(
            "medical_image",
            "A 2D medical image (radiograph, en-face OCT / IR image); meta has pixel_spacing_mm when known",
            sample_type="Tensor[C,H,W] float32",
        )
    )


@hookimpl
def scibind_register_readers(register: Register) -> None:
    """The volume reader (NIfTI, DICOM files/series, TIFF stacks) and the 2D image reader."""
    register(
        ReaderSpec(
            "volume",
            "NIfTI 3D/4D, DICOM (single, enhanced multi-frame, series folder, *.series.json), TIFF stacks, "
            "MHA/NRRD (SimpleITK, optional); RAS, resampling (mm), HU windows, crop/pad; budgeted cache",
            modality="ct_volume",
            factory=f"{PKG}.readers:VolumeReader",
            patterns=(
                "*.nii",
                "*.nii.gz",
                "*.dcm",
                "*.series.json",
                "dir:*.dcm",
                "dir:*.DCM",
                "*.mha",
                "*.mhd",
                "*.nrrd",
                "*.nhdr",
            ),
            requires=(MONAI, "nibabel>=5.1", "pydicom>=2.4"),
        )
    )
    register(
        ReaderSpec(
            "radiograph",
            "2D radiographs and en-face images: DICOM (MONOCHROME1 inverted, rescale applied), PNG/JPEG",
            modality="medical_image",
            factory=f"{PKG}.readers:RadiographReader",
            patterns=("*.dcm", "*.png", "*.jpg", "*.jpeg"),
            requires=("pydicom>=2.4",),
            priority=-20,
        )
    )


def _encoder(
    name: str, description: str, modality: str, embed_dim: int, attr: str, tiny: bool = False
) -> EncoderSpec:
    return EncoderSpec(
        name,
        description,
        modality=modality,
        embed_dim=embed_dim,
        factory=f"{PKG}.encoders:{attr}",
        requires=(MONAI,),
        pretrained=() if tiny else ("local-safetensors",),
    )


@hookimpl
def scibind_register_encoders(register: Register) -> None:
    """MONAI ResNet / DenseNet / ViT towers in 3D and 2D, each family with a tiny CPU variant."""
    register(
        _encoder(
            "resnet",
            "MONAI 3D ResNet-10/18/34/50 (depth=...), pooled features",
            "ct_volume",
            512,
            "ResNetEncoder",
        )
    )
    register(
        _encoder(
            "densenet", "MONAI 3D DenseNet-121 layout, linear output", "ct_volume", 512, "DenseNetEncoder"
        )
    )
    register(
        _encoder(
            "vit",
            "MONAI 3D ViT (96^3, patch 16); forward_tokens for token-level objectives",
            "ct_volume",
            768,
            "ViTEncoder",
        )
    )
    register(
        _encoder(
            "tiny",
            "3D ResNet-10 with widths 8-64, for tests and the demo",
            "ct_volume",
            64,
            "tiny_resnet",
            True,
        )
    )
    register(
        _encoder(
            "tiny-vit",
            "2-layer 3D ViT on 32^3 inputs with forward_tokens, for tests",
            "ct_volume",
            64,
            "tiny_vit",
            True,
        )
    )
    register(
        _encoder(
            "resnet-2d",
            "MONAI 2D ResNet for radiographs and en-face images",
            "medical_image",
            512,
            "resnet_2d",
        )
    )
    register(
        _encoder(
            "densenet-2d", "MONAI 2D DenseNet-121 layout, linear output", "medical_image", 512, "densenet_2d"
        )
    )
    register(
        _encoder(
            "vit-2d", "MONAI 2D ViT (224 px, patch 16) with forward_tokens", "medical_image", 768, "vit_2d"
        )
    )
    register(
        _encoder(
            "tiny-2d", "2D ResNet-10 with widths 8-64, for tests", "medical_image", 64, "tiny_resnet_2d", True
        )
    )
    register(
        _encoder(
            "tiny-vit-2d",
            "2-layer 2D ViT on 32^2 inputs, for tests",
            "medical_image",
            64,
            "tiny_vit_2d",
            True,
        )
    )


@hookimpl
def scibind_register_objectives(register: Register) -> None:
    """MGCA: instance (core/clip) + token (core/filip) + disease (core/prototype) levels, weighted."""
    register(
        ObjectiveSpec(
            "mgca",
            "MGCA's three levels as one objective: weighted core/clip + core/filip (tokens) + core/prototype",
            factory=f"{PKG}.mgca:MgcaObjective",
        )
    )


@hookimpl
def scibind_register_heads(register: Register) -> None:
    """Zero-shot findings (prompt AUROC) and multilinear-inner-product retrieval (Symile models)."""
    register(
        HeadSpec(
            "findings",
            "Zero-shot findings from positive vs negative text prompts: per-finding and macro AUROC",
            factory=f"{PKG}.findings:FindingsTask",
            task="findings",
        )
    )
    register(
        HeadSpec(
            "mip-retrieval",
            "Retrieve one view from two or more others by their multilinear inner product (core/symile)",
            factory=f"{PKG}.mip:MipRetrievalTask",
            task="retrieval",
        )
    )


@hookimpl
def scibind_register_model_configs(register: Register) -> None:
    """The demos (synthetic CT <-> reports; radiograph + table <-> outcome with Symile) and the variants."""
    register(
        RecipeSpec(
            "synthetic-ct-report",
            "Synthetic chest CT (NIfTI + DICOM series) <-> templated reports; retrieval and zero-shot lobe",
            source=f"{PKG}:recipes/synthetic-ct-report.yaml",
            demo=True,
        )
    )
    register(
        RecipeSpec(
            "synthetic-ct-report-soft",
            "Demo CT <-> reports with Cardiac-CLIP soft labels from structured findings (core/soft-clip)",
            source=f"{PKG}:recipes/synthetic-ct-report-soft.yaml",
        )
    )
    register(
        RecipeSpec(
            "synthetic-ct-report-mgca",
            "Demo CT <-> reports with MGCA's prototype (disease) + instance levels (core/prototype)",
            source=f"{PKG}:recipes/synthetic-ct-report-mgca.yaml",
        )
    )
    register(
        RecipeSpec(
            "synthetic-ct-xray",
            "Synthetic CT (3D) <-> frontal radiograph (2D) <-> report; 3D-2D image retrieval, zero-shot lobe",
            source=f"{PKG}:recipes/synthetic-ct-xray.yaml",
        )
    )
    register(
        RecipeSpec(
            "synthetic-xray-mgca",
            "Synthetic radiographs <-> reports, MGCA's instance + token (patch/word) + prototype levels",
            source=f"{PKG}:recipes/synthetic-xray-mgca.yaml",
        )
    )
    register(
        RecipeSpec(
            "synthetic-xray-more",
            "Radiograph + clinical table <-> outcome text, three views with core/symile (MoRE-style)",
            source=f"{PKG}:recipes/synthetic-xray-more.yaml",
            demo=True,  # the demo of an N-modality objective: MIP retrieval against pairwise cosines
        )
    )
    register(
        RecipeSpec(
            "synthetic-oct-enface",
            "Synthetic OCT cubes (DICOM OPT + NIfTI) <-> en-face images; 3D <-> 2D retrieval (OCTCube-M)",
            source=f"{PKG}:recipes/synthetic-oct-enface.yaml",
        )
    )


@hookimpl
def scibind_register_datasets(register: Register) -> None:
    """Synthetic chest CT (demo), chest radiographs with a clinical table, and retinal OCT cubes."""
    register(
        DatasetSpec(
            "synthetic-chest-ct",
            "Chest CT phantoms with one nodule (lobe, size, density) written as NIfTI and DICOM series, "
            "with templated reports and pseudonymous ids",
            factory=f"{PKG}.synthetic:make_synthetic_chest_ct",
        )
    )
    register(
        DatasetSpec(
            "synthetic-chest-xray",
            "Chest radiograph phantoms (PNG) with templated reports, a clinical table and an outcome that "
            "depends on image and table jointly",
            factory=f"{PKG}.synthetic_xray:make_synthetic_chest_xray",
        )
    )
    register(
        DatasetSpec(
            "synthetic-oct",
            "Retinal OCT cubes with one lesion (drusen, fluid, atrophy) written as DICOM Ophthalmic "
            "Tomography and NIfTI, paired with en-face images",
            factory=f"{PKG}.synthetic_oct:make_synthetic_oct",
        )
    )


@hookimpl
def scibind_register_commands(cli: object) -> None:
    """``scibind medical-index``: DICOM export -> pseudonymous manifest."""
    from scibind_medical_imaging.cli import medical_index

    cli.command("medical-index")(medical_index)  # type: ignore[attr-defined]
