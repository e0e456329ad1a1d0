"""Group-safe splits: records of one group (patient, donor, plate, scaffold) never land in two splits."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from scibind.data.manifest import Manifest, is_missing
from scibind.errors import ConfigError, DataError

__all__ = ["DEFAULT_FRACTIONS", "assign_splits", "check_group_splits", "check_manifest_splits"]

DEFAULT_FRACTIONS: Mapping[str, float] = {"train": 0.8, "eval": 0.2}


def _check_fractions(fractions: Mapping[str, float]) -> dict[str, float]:
    if not fractions:
        raise ConfigError("split fractions are empty; give e.g. {'train': 0.8, 'eval': 0.2}")
    bad = {
        k: v
        for k, v in fractions.items()
        if not (isinstance(v, (int, float)) and v >= 0 and math.isfinite(v))
    }
    if bad:
        raise ConfigError(f"split fractions must be finite numbers >= 0, got {bad}")
    total = float(sum(fractions.values()))
    if not math.isclose(total, 1.0, abs_tol=1e-6):
        raise ConfigError(f"split fractions must sum to 1, got {dict(fractions)} (sum {total:g})")
    return {str(k): float(v) for k, v in fractions.items()}


def assign_splits(
    ids: Sequence[Any],
    groups: Sequence[Any] | None = None,
    fractions: Mapping[str, float] = DEFAULT_FRACTIONS,
    seed: int = 0,
) -> list[str]:
    """Assign each record to a split so that no group spans two splits.

    Groups are shuffled with ``seed`` (from their sorted keys, so the result does not depend on row order),
    then placed largest first, each into the split furthest below its target ``fraction * n``. Every split
    therefore ends within ``(number of splits - 1) * largest group size`` records of its target (within one
    largest group for two splits). A record with a missing group is a group of its own.

    Args:
        ids: Record ids (used for records without a group).
        groups: Group of each record, or ``None`` when no record has one.
        fractions: Split name -> fraction of records; must sum to 1.
        seed: Seed of the group shuffle.

    Returns:
        The split name of each record, in input order.

    Raises:
        ConfigError: Fractions are negative or do not sum to 1.
        DataError: ``ids`` and ``groups`` differ in length.
    """
    fracs = _check_fractions(fractions)
    n = len(ids)
    if groups is None:
        groups = [None] * n
    if len(groups) != n:
        raise DataError(f"assign_splits: {n} ids but {len(groups)} groups; give one group per id")
    keys = [(1, str(i)) if is_missing(g) else (0, str(g)) for i, g in zip(ids, groups, strict=True)]
    members: dict[tuple[int, str], list[int]] = {}
    for row, key in enumerate(keys):
        members.setdefault(key, []).append(row)
    unique = sorted(members)
    order = np.random.default_rng(seed).permutation(len(unique))
    # Largest groups first (ties in shuffled order), so late small groups can fill the remaining gaps.
    placed = sorted((unique[j] for j in order), key=lambda k: -len(members[k]))
    names = list(fracs)
    deficit = np.array([fracs[s] * n for s in names], dtype=np.float64)
    out = [""] * n
    for key in placed:
        rows = members[key]
        target = int(np.argmax(deficit))
        deficit[target] -= len(rows)
        for row in rows:
            out[row] = names[target]
    return out


def check_group_splits(splits: Sequence[Any], groups: Sequence[Any], *, where: str = "manifest") -> None:
    """Check that no group has records in two splits.

    Records with a missing group or split are ignored.

    Args:
        splits: Split of each record.
        groups: Group of each record.
        where: What to name in the message (the manifest path).

    Raises:
        DataError: A group spans several splits; the message names the groups and their splits.
    """
    if len(splits) != len(groups):
        raise DataError(
            f"{where}: {len(splits)} splits but {len(groups)} groups; give one of each per record"
        )
    seen: dict[str, set[str]] = {}
    for split, group in zip(splits, groups, strict=True):
        if is_missing(split) or is_missing(group):
            continue
        seen.setdefault(str(group), set()).add(str(split))
    leaking = {g: sorted(s) for g, s in seen.items() if len(s) > 1}
    if not leaking:
        return
    parts = [
        f"group {g!r} is in splits {', '.join(repr(s) for s in splits_)}"
        for g, splits_ in sorted(leaking.items())[:5]
    ]
    more = f" (and {len(leaking) - 5} more groups)" if len(leaking) > 5 else ""
    raise DataError(
        f"{where}: {'; '.join(parts)}{more}. A group (patient, donor, plate, scaffold) must stay in one "
        "split, or evaluation leaks training data; fix the 'split' column or regenerate it with "
        "scibind.data.splits.assign_splits"
    )


def check_manifest_splits(manifest: Manifest) -> None:
    """Check a manifest's ``split`` column against its ``group`` column (no-op when either is absent).

    Raises:
        DataError: A group spans several splits.
    """
    frame = manifest.frame
    if "split" in frame.columns and "group" in frame.columns:
        check_group_splits(frame["split"].tolist(), frame["group"].tolist(), where=manifest.name)
