"""The strict JSON reader: its depth scan agrees with the real depth, and what it refuses."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sora_actors.http.strictjson import JsonRefused, read_json, too_deep

# Strings full of the characters the scan must not be fooled by.
TRICKY = st.text(alphabet='[]{}"\\ab\u00e9\u2028\n', max_size=8)
VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | TRICKY,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TRICKY, inner, max_size=3),
    max_leaves=40,
)


def depth(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max(map(depth, value), default=0)
    if isinstance(value, dict):
        return 1 + max(map(depth, value.values()), default=0)
    return 0


@settings(max_examples=400, deadline=None)
@given(VALUES, st.sampled_from([None, 0, 2]), st.booleans())
def test_the_scan_finds_the_exact_depth(value: Any, indent: int | None, ascii_only: bool) -> None:
    text = json.dumps(value, indent=indent, ensure_ascii=ascii_only)
    actual = depth(value)
    for limit in range(12):
        assert too_deep(text, limit) == (actual > limit), (text, limit, actual)


@pytest.mark.parametrize(
    ("text", "limit", "deep"),
    [
        ('["[[[[", "\\"[[[["]', 1, False),  # brackets inside strings, escaped quotes
        ('["\\\\", [["\\\\\\"]]"]]]', 3, False),  # escaped backslash, then a quote
        ('["\\\\", [["\\\\\\"]]"]]]', 2, True),
        ("[" * 3 + '"' + "[" * 50, 2, True),  # unterminated string: its brackets do not count
        ("[" * 3 + '"' + "[" * 50, 3, False),
        ("]]][[", 2, False),  # a parser stops at the first "]"
        ("[[]" + "[" * 40, 32, True),  # never closed: counted as open
    ],
)
def test_the_scan_on_text_that_is_odd_or_not_json(text: str, limit: int, deep: bool) -> None:
    assert too_deep(text, limit) is deep


def refused(text: str) -> JsonRefused:
    with pytest.raises(JsonRefused) as caught:
        read_json(text, 32)
    return caught.value


def test_what_the_reader_refuses() -> None:
    assert refused("[" * 33 + "]" * 33).code == "JSON_TOO_DEEP"
    assert refused("[" * 100_000).code == "JSON_TOO_DEEP"
    assert read_json("[" * 32 + "]" * 32, 32) is not None
    twice = refused('{"a": 1, "b": {"a": 2, "c": 3, "c": 4}, "a": 5, "b": 6}')
    assert twice.code == "DUPLICATE_KEY"
    assert twice.details == [
        {"field": "c", "message": "given more than once"},
        {"field": "a", "message": "given more than once"},
        {"field": "b", "message": "given more than once"},
    ]
    for text in ("[NaN]", "[-Infinity]", "[1e400]", '["\\udc00"]', '{"\\ud800x": 1}', "{nope"):
        assert refused(text).code == "INVALID_JSON", text
    assert refused("[" + "9" * 5000 + "]").code == "INVALID_JSON"  # beyond int's 4,300 digits
    # A proper surrogate pair is one character; an escaped backslash before "u" is text.
    assert read_json('["\\ud83d\\ude00", "\\\\ud800"]', 32) == ["\U0001f600", "\\ud800"]
