"""Perturbation text templates."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scibind.errors import ConfigError
from scibind_cell_painting.text import metadata_fields, perturbation_text

words = st.from_regex(r"[A-Za-z][A-Za-z0-9 -]{0,15}[A-Za-z0-9]", fullmatch=True)


@given(words, st.one_of(st.none(), words), st.one_of(st.none(), words))
def test_optional_clauses_appear_exactly_when_known(name, moa, target):
    text = perturbation_text(
        {"pert": name, "moa": moa, "target": target}, "{pert}[, a {moa}][, targeting {target}]"
    )
    expected = " ".join(name.split())
    if moa is not None:
        expected += ", a " + " ".join(moa.split())
    if target is not None:
        expected += ", targeting " + " ".join(target.split())
    assert text == expected


def test_lincs_metadata_fields_and_pipes():
    record = {
        "Metadata_broad_sample": "BRD-K1",
        "Metadata_moa": "PARP inhibitor|DNA repair",
        "Metadata_target": float("nan"),
    }
    fields = metadata_fields(record)
    assert fields["pert"] == "BRD-K1" and fields["target"] is None
    assert perturbation_text(fields) == "BRD-K1, PARP inhibitor, DNA repair"


def test_required_field_missing_and_malformed_template():
    with pytest.raises(ConfigError, match=r"needs field\(s\) \['pert'\]"):
        perturbation_text({"moa": "x"}, "{pert}")
    with pytest.raises(ConfigError, match="closed"):
        perturbation_text({"pert": "x"}, "{pert}[, {moa}")
