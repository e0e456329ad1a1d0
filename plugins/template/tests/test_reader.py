"""Domain tests of the template's ``key = value`` parser."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scibind.errors import ReadError
from scibind_template.reader import KeyValueReader, parse_key_values

keys = st.from_regex(r"[a-z][a-z0-9_]{0,11}", fullmatch=True)
finite = st.floats(allow_nan=False, allow_infinity=False, width=32)


@given(st.dictionaries(keys, finite, min_size=1, max_size=8))
def test_parse_round_trip(values: dict[str, float]):
    text = "# header\n" + "".join(f"{k} = {v!r}  # note\n" for k, v in values.items())
    parsed = parse_key_values(text)
    assert list(parsed) == list(values)
    assert all(math.isclose(parsed[k], v, rel_tol=0, abs_tol=0) for k, v in values.items())


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("a = 1\na = 2\n", "defined twice"),
        ("just words\n", "expected 'key = value'"),
        ("# only\n", "no 'key"),
        ("a = inf\n", "finite"),
    ],
)
def test_parse_errors_say_what_is_wrong(text: str, problem: str):
    with pytest.raises(ReadError, match=problem):
        parse_key_values(text)


def test_expected_keys_fix_the_width(tmp_path):
    path = tmp_path / "x.kv"
    path.write_text("b = 2\na = 1\nextra = 9\n", encoding="utf-8")
    sample = KeyValueReader(keys=["a", "b"]).read(str(path), record_id="r1")
    assert sample.data.tolist() == [1.0, 2.0]
    with pytest.raises(ReadError, match="missing keys"):
        KeyValueReader(keys=["a", "c"]).read(str(path), record_id="r1")
