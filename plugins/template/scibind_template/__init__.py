"""A minimal third-party scibind plugin to copy."""
