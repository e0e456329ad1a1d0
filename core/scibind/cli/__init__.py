"""The ``scibind`` command line (typer), one module per command group."""
