"""Lost-submission matching: which listed upstream jobs a create may have made."""

from __future__ import annotations

from typing import Any

import pytest

from sora_actors.upstream import JobPage, SubmitRequest, UpstreamJob, UpstreamStatus
from sora_actors.upstream.mapping import may_have_created
from sora_actors.upstream.provider import find_in_list

REQUEST = SubmitRequest("a red fox", model="sora-2-pro", size="1280x720", seconds=10)
CUSTOM = {"sora-2-pro": "sora-2-custom"}


def job(**fields: Any) -> UpstreamJob:
    values: dict[str, Any] = {
        "id": "video_1",
        "status": UpstreamStatus.QUEUED,
        "prompt": "a red fox",
        "model": "sora-2-custom",
        "size": "1280x720",
        "seconds": "12",
    }
    return UpstreamJob(**{**values, **fields})


def test_the_job_a_custom_model_map_sent_matches_only_with_that_map() -> None:
    assert may_have_created(job(), REQUEST, CUSTOM)
    assert not may_have_created(job(), REQUEST)  # the default map never sends "sora-2-custom"


@pytest.mark.parametrize(
    "fields",
    [
        {"model": "sora-2-pro"},  # as asked (an upstream that echoes the name it was given)
        {"model": None, "size": None, "seconds": None},  # an upstream that echoes nothing
        {"seconds": "10"},  # a dialect that takes the length as asked
    ],
)
def test_what_an_upstream_may_echo_still_matches(fields: dict[str, Any]) -> None:
    assert may_have_created(job(**fields), REQUEST, CUSTOM)


@pytest.mark.parametrize(
    "fields",
    [
        {"prompt": "a red fox "},
        {"prompt": None},
        {"model": "sora-2"},
        {"size": "720x1280"},
        {"seconds": "8"},
    ],
)
def test_anything_else_does_not_match(fields: dict[str, Any]) -> None:
    assert not may_have_created(job(**fields), REQUEST, CUSTOM)


def test_seconds_follow_the_allowed_lengths() -> None:
    gateway = (4, 5, 8, 10, 12, 15)
    assert may_have_created(job(seconds="10"), REQUEST, CUSTOM, gateway)
    assert not may_have_created(job(seconds="12"), REQUEST, CUSTOM, gateway)


async def test_find_in_list_walks_the_pages_it_is_allowed() -> None:
    pages = {
        None: JobPage((job(id="a"), job(id="b", prompt="x")), True, "a", "b"),
        "b": JobPage((job(id="c"),), True, "c", "c"),
        "c": JobPage((job(id="d"),), False, "d", "d"),
    }
    asked: list[str | None] = []

    async def list_jobs(after: str | None = None, limit: int = 100) -> JobPage:
        asked.append(after)
        return pages[after]

    def wanted(candidate: UpstreamJob) -> bool:
        return may_have_created(candidate, REQUEST, CUSTOM)

    assert [j.id for j in await find_in_list(list_jobs, wanted, 2)] == ["a", "c"]
    assert asked == [None, "b"]
    asked.clear()
    assert [j.id for j in await find_in_list(list_jobs, wanted, 5)] == ["a", "c", "d"]
    assert asked == [None, "b", "c"]  # stops at the last page
