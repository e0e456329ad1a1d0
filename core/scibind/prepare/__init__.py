"""The engine behind ``scibind prepare``: read, validate and cache items from files, folders and manifests.

Each item (a file a reader claims, or one view of one manifest record) is handed to its reader's
``prepare(path, out_dir)``. Progress is kept per item in ``<out>/state/`` so a rerun skips finished items
and a killed run resumes; bad items go to ``<out>/quarantine.jsonl`` and the rest continue.
"""

from __future__ import annotations

from scibind.prepare.engine import PrepareSummary, run_prepare
from scibind.prepare.items import PrepareItem, collect_items
from scibind.prepare.options import PrepareOptions, parse_overrides

__all__ = [
    "PrepareItem",
    "PrepareOptions",
    "PrepareSummary",
    "collect_items",
    "parse_overrides",
    "run_prepare",
]
