"""Data: samples and batches, readers, manifests, group-safe splits, paired datasets and collate."""
