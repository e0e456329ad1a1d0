"""Hook implementations of the ``template`` plugin: registrations only, no heavy imports.

Copy this package to start a plugin. Everything here is data: names, descriptions and ``"module:attr"``
factories. ``scibind plugins`` and ``scibind list`` read it without importing torch; the factory modules
(:mod:`scibind_template.reader`, :mod:`scibind_template.encoder`) are imported only when a component is built.
"""

from __future__ import annotations

from scibind import EncoderSpec, ReaderSpec, hookimpl
from scibind.hookspecs import Register

scibind_api_version = 1
"""The scibind plugin API this plugin was written for (checked when it loads)."""


@hookimpl
def scibind_register_readers(register: Register) -> None:
    """A reader of ``key = value`` text files, yielding ``vector`` samples."""
    register(
        ReaderSpec(
            "kv",
            "Numeric 'key = value' text files (one feature per line) as a vector",
            modality="vector",
            factory="scibind_template.reader:KeyValueReader",
            patterns=("*.kv",),
        )
    )


@hookimpl
def scibind_register_encoders(register: Register) -> None:
    """A linear encoder over vectors and its tiny variant for tests."""
    register(
        EncoderSpec(
            "linear",
            "Linear projection of a feature vector, then LayerNorm",
            modality="vector",
            embed_dim=128,
            factory="scibind_template.encoder:LinearEncoder",
        )
    )
    register(
        EncoderSpec(
            "tiny-linear",
            "LinearEncoder with embed_dim 16, for tests",
            modality="vector",
            embed_dim=16,
            factory="scibind_template.encoder:tiny_linear",
        )
    )
