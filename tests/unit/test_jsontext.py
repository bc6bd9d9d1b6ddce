"""switch.jsontext: orjson's text must be the standard library's, or the standard library
decides. The audit chain hashes ``canonical``'s output, so a single byte of difference
would break every chain written before (or verified elsewhere)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from switch import jsontext

#: Any code point but surrogates, with the troublesome ones made likely.
_TEXT = st.text(
    alphabet=st.one_of(
        st.characters(blacklist_categories=("Cs",)),
        st.sampled_from('"\\/\x00\x1f\x7f\u2028\u2029\ufeff\uffff\U0001f600é'),
    )
)
#: What orjson writes itself: no floats (the audit refuses them), 64-bit integers.
_VALUES: st.SearchStrategy[Any] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | _TEXT,
    lambda inner: st.lists(inner, max_size=5)
    | st.tuples(inner, inner)
    | st.dictionaries(_TEXT, inner, max_size=5),
    max_leaves=25,
)


def _stdlib_canonical(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _stdlib_compact(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


@settings(max_examples=800)
@given(_VALUES)
def test_canonical_is_the_design_text(value: object) -> None:
    assert jsontext.canonical(value) == _stdlib_canonical(value)


@settings(max_examples=400)
@given(_VALUES)
def test_compact_is_the_standard_library_text(value: object) -> None:
    assert jsontext.compact(value) == _stdlib_compact(value)


@pytest.mark.parametrize(
    "value",
    [
        2**64,  # beyond orjson's integers
        -(2**63) - 1,
        {"big": [1, 2**100]},
        {1: "a", 2: "b"},  # non-string keys: json writes them as strings
        {"a": {True: None}},
    ],
)
def test_what_orjson_refuses_the_standard_library_writes(value: object) -> None:
    assert jsontext.canonical(value) == _stdlib_canonical(value)
    assert jsontext.compact(value) == _stdlib_compact(value)


def test_a_lone_surrogate_is_still_the_standard_library_text() -> None:
    value = {"name": "\ud800"}
    assert jsontext.canonical(value) == _stdlib_canonical(value)
    with pytest.raises(UnicodeEncodeError):  # as before: not UTF-8, so no body
        jsontext.compact(value)


def test_a_non_json_value_is_still_a_type_error() -> None:
    with pytest.raises(TypeError):
        jsontext.canonical({"when": object()})


@settings(max_examples=400)
@given(_VALUES)
def test_loads_reads_what_the_standard_library_reads(value: object) -> None:
    text = _stdlib_compact(value)
    assert jsontext.loads(text) == json.loads(text)
    assert jsontext.loads(text.decode("utf-8")) == json.loads(text)


@pytest.mark.parametrize(
    "data",
    [
        b"NaN",
        b"[Infinity]",
        b"-Infinity",
        b'"\\ud800"',  # a lone surrogate escape
        b'"\xff"',  # not UTF-8
        b'"\x01"',  # a raw control character
        b"[" * 1100 + b"]" * 1100,  # nested beyond 1024
        b"1e400",
        b'{"a": 1} {"b": 2}',
        b"",
    ],
)
def test_loads_refuses_with_value_error(data: bytes) -> None:
    with pytest.raises(ValueError):
        jsontext.loads(data)


@settings(max_examples=1500)
@given(st.binary(max_size=200) | _TEXT.map(lambda s: s.encode("utf-8", "surrogatepass")))
def test_loads_on_hostile_bytes_answers_or_raises_value_error(data: bytes) -> None:
    try:
        jsontext.loads(data)
    except ValueError:
        pass
