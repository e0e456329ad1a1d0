"""``--set a.b.c=value`` overrides of recipe keys.

Values are parsed as YAML scalars or flow collections (``--set train.lr=3e-4``,
``--set train.betas=[0.9,0.95]``, ``--set data.train=null``). Keys are checked against the recipe's
pydantic models level by level, so a typo fails with the valid keys at that level rather than later with a
generic validation error. Free-form mappings (``encoder_kwargs``, ``objective.kwargs``) accept any key, and
list items are addressed by index (``eval.tasks.0.k=5``).
"""

from __future__ import annotations

import types
import typing
from collections.abc import Sequence
from typing import Any, Union

import yaml
from pydantic import BaseModel

from scibind.errors import ConfigError

__all__ = ["apply_overrides", "parse_override"]


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split ``"a.b.c=value"`` into its key path and its YAML-parsed value.

    Raises:
        ConfigError: There is no ``=``, the key is empty, or the value is not valid YAML.
    """
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(
            f"--set {text!r}: expected KEY=VALUE with a dotted key, e.g. --set train.max_steps=100"
        )
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(
            f"--set {text!r}: the value is not a YAML scalar or flow collection: {exc}"
        ) from exc
    return key.split("."), value


def apply_overrides(raw: dict[str, Any], overrides: Sequence[str], model: type[BaseModel]) -> dict[str, Any]:
    """Apply ``--set`` overrides to a raw recipe mapping (in place) and return it.

    Args:
        raw: The recipe as loaded from YAML (nested dicts and lists).
        overrides: ``"a.b.c=value"`` strings, applied in order.
        model: The pydantic model describing ``raw``'s top level, used to reject unknown keys.

    Raises:
        ConfigError: A key does not exist at its level (the message lists the valid keys), or a list index
            is out of range.
    """
    for text in overrides:
        keys, value = parse_override(text)
        node: Any = raw
        schema: Any = model
        for depth, key in enumerate(keys):
            where = ".".join(keys[:depth]) or "the recipe's top level"
            last = depth == len(keys) - 1
            if isinstance(node, list):
                node, schema = _step_into_list(node, key, schema, where, text, last, value)
                continue
            if not isinstance(node, dict):
                raise ConfigError(
                    f"--set {text!r}: {where} is {node!r}, not a mapping, so it has no key {key!r}"
                )
            schema = _check_key(schema, key, where, text)
            if last:
                node[key] = value
            else:
                child = node.get(key)
                if child is None:
                    child = node[key] = {}
                node = child
    return raw


def _step_into_list(
    node: list[Any], key: str, schema: Any, where: str, text: str, last: bool, value: Any
) -> tuple[Any, Any]:
    try:
        index = int(key)
        if not -len(node) <= index < len(node):
            raise IndexError(index)
    except (ValueError, IndexError) as exc:
        raise ConfigError(
            f"--set {text!r}: {where} is a list of {len(node)} items; use an index 0..{len(node) - 1}"
        ) from exc
    item_schema = _list_item(schema)
    if last:
        node[index] = value
        return node, item_schema
    return node[index], item_schema


def _check_key(schema: Any, key: str, where: str, text: str) -> Any:
    """Return the schema of ``key`` under ``schema``, or raise naming the valid keys."""
    schema = _unwrap_optional(schema)
    if isinstance(schema, type) and issubclass(schema, BaseModel):
        fields = schema.model_fields
        if key not in fields:
            raise ConfigError(
                f"--set {text!r}: unknown key {key!r} in {where}; valid keys: {', '.join(sorted(fields))}"
            )
        return fields[key].annotation
    origin = typing.get_origin(schema)
    if origin is dict:
        args = typing.get_args(schema)
        return args[1] if len(args) == 2 else Any
    return Any


def _list_item(schema: Any) -> Any:
    schema = _unwrap_optional(schema)
    if typing.get_origin(schema) in (list, tuple):
        args = typing.get_args(schema)
        return args[0] if args else Any
    return Any


def _unwrap_optional(schema: Any) -> Any:
    origin = typing.get_origin(schema)
    if origin is Union or origin is types.UnionType:
        args = [a for a in typing.get_args(schema) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return schema
