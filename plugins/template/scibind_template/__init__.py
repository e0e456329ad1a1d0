"""A minimal third-party scibind plugin to copy: a ``key = value`` reader and a linear encoder.

``plugin.py`` holds the hook implementations (registrations only); ``reader.py`` and ``encoder.py`` hold
the components, imported only when they are built.
"""
