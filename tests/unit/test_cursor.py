"""The keyset cursor of ``GET /api/video/tasks``: what it encodes, and what it refuses."""

from __future__ import annotations

import base64

import pytest

from sora_actors.http.envelope import ApiError
from sora_actors.http.tasks import _decode_cursor, _encode_cursor

from .factory import make_task


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode()


@pytest.mark.parametrize(
    ("created_at", "video_id"),
    [(0, "video_a"), (1_764_600_000_123, "video_0123abcd"), (2**63 - 1, "x:y:z"), (5, "é/ü?&")],
)
def test_a_cursor_gives_back_the_position_it_was_made_from(created_at: int, video_id: str) -> None:
    cursor = _encode_cursor(make_task(video_id, "u", created_at=created_at))
    assert cursor.isascii() and "/" not in cursor and "+" not in cursor  # safe in a query
    assert _decode_cursor(cursor) == (created_at, video_id)


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "%%%",
        b64(b"1764600000123"),  # no separator
        b64(b"soon:video_a"),  # not a number
        b64(b"-5:video_a"),  # before the epoch
        b64(f"{2**63}:video_a".encode()),  # beyond a BIGINT
        b64(b"12:a\x00b"),  # NUL: PostgreSQL text cannot hold it
        b64(b"12:" + b"x" * 201),  # longer than any id
        b64(b"12:\xff\xfe"),  # not UTF-8
    ],
)
def test_anything_else_is_a_400_invalid_cursor(raw: str) -> None:
    with pytest.raises(ApiError) as refused:
        _decode_cursor(raw)
    assert (refused.value.status, refused.value.code) == (400, "INVALID_CURSOR")
    assert refused.value.message == "cursor: not a cursor this API issued"
