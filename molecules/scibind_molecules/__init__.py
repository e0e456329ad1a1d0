"""scibind-molecules: Molecules: RDKit graphs and text."""

__version__ = "0.1.0"
