"""JSON as this API reads it (REST bodies and WebSocket messages alike).

Python's `json.loads` recurses once per nesting level and raises RecursionError (a 500)
at about 1,000 levels; the body size limit does not help, since ``[`` is one byte. So the
depth is measured first, with a scan that never recurses, and a body nested deeper than
``max_json_depth`` is refused before it is parsed. The parser is then strict on purpose:
a key given twice is refused (naming the key) instead of the last one silently winning, and
``NaN``/``Infinity`` (not JSON, though Python accepts them) and lone UTF-16 surrogates
(``"\\ud800"``: no database can store them) are refused.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

_NOT_BRACKETS = bytes(byte for byte in range(256) if byte not in b"[]{}")
_SQUARE = bytes.maketrans(b"{}", b"[]")
# A \uD800-\uDFFF escape in the text: half of a pair, or alone (then it cannot be stored).
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


class JsonRefused(ValueError):
    """A body that is not JSON we accept: ``code`` and ``message`` for the envelope,
    ``details`` the offending fields (``[{"field": ..., "message": ...}]``) if any."""

    def __init__(self, code: str, message: str, details: list[dict[str, str]] | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details


def too_deep(text: str, limit: int) -> bool:
    """Whether arrays and objects in ``text`` nest more than ``limit`` levels; found without
    recursion, in a few linear passes of C string operations (measured: at most about as
    slow as `json.loads` on the same text, usually far faster).

    String literals removed, only brackets kept (all made square), ``limit + 1`` opening
    brackets in a row are too deep at once; otherwise the pairs are peeled one level a pass
    (removing every "[]" removes the innermost ones), and a pair still there after ``limit``
    passes has more than ``limit`` levels. Text that is not JSON may count as deeper than a
    parser would get before failing, never as shallower: up to that point both read string
    literals alike.
    """
    # Escaped backslashes first, then escaped quotes: the pairs a parser reads, left to right.
    unescaped = text.replace("\\\\", "").replace('\\"', "")
    outside = "".join(unescaped.split('"')[::2])  # odd pieces are inside string literals
    brackets = outside.encode("utf-8", "surrogatepass").translate(_SQUARE, _NOT_BRACKETS)
    if b"[" * (limit + 1) in brackets:
        return True
    for peeled in range(limit + 1):
        if b"[]" not in brackets:
            # What is left has no pair: closes without an open (a parser stops at the first
            # one, having gone at most ``peeled`` deep), then opens never closed.
            return not brackets.startswith(b"]") and len(brackets) + peeled > limit
        brackets = brackets.replace(b"[]", b"")
    return True


def read_json(text: str, max_depth: int) -> Any:
    """Parse ``text``; JsonRefused (a ValueError) for anything this API does not accept."""
    # Cheap first: a document with few brackets cannot be deep (the usual case).
    if text.count("[") + text.count("{") > max_depth and too_deep(text, max_depth):
        raise JsonRefused(
            "JSON_TOO_DEEP",
            f"The JSON nests arrays/objects more than {max_depth} levels deep; nothing this "
            "API accepts is nested that deeply.",
        )
    duplicates: list[str] = []

    def pairs_to_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        result = dict(pairs)
        if len(result) != len(pairs):
            seen: set[str] = set()
            for key, _ in pairs:
                if key in seen and key not in duplicates:
                    duplicates.append(key)
                seen.add(key)
        return result

    try:
        value = json.loads(
            text,
            object_pairs_hook=pairs_to_object,
            parse_constant=_refuse_constant,
            parse_float=_finite_float,
        )
    except JsonRefused:
        raise
    except ValueError as error:  # JSONDecodeError, or an integer beyond 4,300 digits
        raise JsonRefused("INVALID_JSON", f"Not valid JSON: {error}") from None
    if _SURROGATE_ESCAPE.search(text) and _has_lone_surrogate(value):
        raise JsonRefused(
            "INVALID_JSON", "Not valid JSON: a \\u escape is half of a UTF-16 surrogate pair."
        )
    if duplicates:
        names = ", ".join(repr(key[:64]) for key in duplicates)
        raise JsonRefused(
            "DUPLICATE_KEY",
            f"The JSON names a key more than once: {names}; send each key once.",
            [{"field": key[:64], "message": "given more than once"} for key in duplicates],
        )
    return value


def _has_lone_surrogate(value: Any) -> bool:
    """Whether a parsed value holds a lone surrogate (the parser joins proper pairs)."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if isinstance(value, dict):
        return any(_has_lone_surrogate(k) or _has_lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_lone_surrogate(item) for item in value)
    return False


def _refuse_constant(name: str) -> Any:
    raise JsonRefused("INVALID_JSON", f"Not valid JSON: {name} is not a JSON number.")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise JsonRefused("INVALID_JSON", f"Not valid JSON: the number {text[:32]} is too large.")
    return value
