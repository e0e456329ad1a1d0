"""scibind-pathology: Whole-slide pathology images: tiles, features, slide embeddings."""

__version__ = "0.1.0"
