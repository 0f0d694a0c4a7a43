"""The ``Range`` header of ``/files``: one satisfiable range, else the whole file or a 416."""

from __future__ import annotations

import pytest

from sora_actors.http.envelope import ApiError
from sora_actors.http.files import _byte_range

SIZE = 1000


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("bytes=0-0", (0, 0)),
        ("bytes=0-999", (0, 999)),
        ("bytes=10-19", (10, 19)),
        ("bytes=500-", (500, 999)),  # open-ended: to the end
        ("bytes=990-5000", (990, 999)),  # an end past the file is clipped
        ("bytes=999-999", (999, 999)),
        ("bytes=-1", (999, 999)),  # suffix: the last byte
        ("bytes=-100", (900, 999)),
        ("bytes=-5000", (0, 999)),  # a suffix longer than the file is all of it
        ("  bytes=1-2 ", (1, 2)),  # surrounding blanks are tolerated
    ],
)
def test_a_single_satisfiable_range(header: str, expected: tuple[int, int]) -> None:
    assert _byte_range(header, SIZE) == expected


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "bytes=-",  # neither end
        "bytes=20-10",  # last before first: invalid, ignored
        "bytes=0-1,5-6",  # several ranges: we may answer with the whole file
        "items=0-1",  # another unit
        "bytes=a-b",
        "bytes 0-1",
        "bytes=" + "9" * 19 + "-",  # longer than any size we serve
    ],
)
def test_anything_else_sends_the_whole_file(header: str | None) -> None:
    assert _byte_range(header, SIZE) is None


@pytest.mark.parametrize("header", ["bytes=1000-", "bytes=1000-1001", "bytes=5000-", "bytes=-0"])
def test_a_range_outside_the_file_is_416_with_the_size(header: str) -> None:
    with pytest.raises(ApiError) as refused:
        _byte_range(header, SIZE)
    error = refused.value
    assert (error.status, error.code) == (416, "RANGE_NOT_SATISFIABLE")
    assert error.headers == {"Content-Range": "bytes */1000", "Accept-Ranges": "bytes"}


@pytest.mark.parametrize("header", ["bytes=0-", "bytes=0-0", "bytes=-10"])
def test_an_empty_file_satisfies_no_range(header: str) -> None:
    with pytest.raises(ApiError) as refused:
        _byte_range(header, 0)
    assert refused.value.headers["Content-Range"] == "bytes */0"
