"""scibind-cell-painting: Cell Painting microscopy fields and profiles."""

__version__ = "0.1.0"
