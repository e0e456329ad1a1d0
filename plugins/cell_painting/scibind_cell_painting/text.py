"""Perturbation text from metadata: templates with optional clauses.

A template is ``str.format`` text whose ``[...]`` clauses are dropped when a field inside them is missing,
so one template serves compounds with and without a known target, and controls::

    >>> record = {"pert": "quinine", "moa": None, "dose_um": 10}
    >>> perturbation_text(record, "{pert}[, a {moa}][ at {dose_um} µM]")
    'quinine at 10 µM'
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from scibind.errors import ConfigError

__all__ = ["DEFAULT_TEMPLATE", "PERT_NAME_FIELDS", "metadata_fields", "perturbation_text"]

DEFAULT_TEMPLATE = "{pert}[, {moa}][, targeting {target}]"
"""Name, mechanism of action and targets, each clause only when known."""

PERT_NAME_FIELDS = ("pert_iname", "compound", "gene", "broad_sample", "pert_id", "perturbation")
"""Fields tried, in order, for ``{pert}`` when a record has no ``pert`` field."""

_CLAUSE = re.compile(r"\[([^\[\]]*)\]")
_FIELD = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)[^{}]*\}")


def _missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and value.strip().lower() in ("", "nan", "none", "na", "null")


def _show(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        return value.strip().replace("|", ", ")  # pipe-separated lists (MOAs, targets) read as prose
    return value


def metadata_fields(record: Mapping[str, Any]) -> dict[str, Any]:
    """Template fields of a metadata row: ``Metadata_`` prefixes dropped, names lower-cased, ``pert`` filled.

    ``pert`` is the first known of :data:`PERT_NAME_FIELDS` (so ``{pert}`` names the compound or gene).
    """
    fields: dict[str, Any] = {}
    for key, value in record.items():
        name = str(key)
        name = name[len("Metadata_") :] if name.startswith("Metadata_") else name
        fields[name.lower()] = None if _missing(value) else value
    if fields.get("pert") is None:
        fields["pert"] = next((fields[f] for f in PERT_NAME_FIELDS if fields.get(f) is not None), None)
    return fields


def perturbation_text(record: Mapping[str, Any], template: str = DEFAULT_TEMPLATE) -> str:
    """Fill ``template`` from ``record``; ``[...]`` clauses with a missing field are dropped.

    Args:
        record: Field -> value (a metadata row; see :func:`metadata_fields` for ``Metadata_*`` columns).
        template: ``str.format`` text with optional ``[...]`` clauses (not nested).

    Raises:
        ConfigError: A field outside any clause is missing, or the template is malformed.
    """
    values = {k: (None if _missing(v) else _show(v)) for k, v in record.items()}

    def clause(match: re.Match[str]) -> str:
        inner = match.group(1)
        needed = _FIELD.findall(inner)
        return "" if any(values.get(f) is None for f in needed) else inner

    text = _CLAUSE.sub(clause, template)
    if "[" in text or "]" in text:
        raise ConfigError(f"template {template!r}: clauses in [...] must be closed and not nested")
    required = [f for f in _FIELD.findall(text) if values.get(f) is None]
    if required:
        raise ConfigError(
            f"template {template!r} needs field(s) {required}, missing from the record (fields: "
            f"{sorted(k for k, v in values.items() if v is not None)}); put optional parts in [...]"
        )
    try:
        return " ".join(text.format(**values).split())
    except (KeyError, IndexError, ValueError) as exc:
        raise ConfigError(f"template {template!r} cannot be filled ({exc})") from exc
