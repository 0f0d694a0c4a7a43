"""OpenAICompatProvider against the real simulator over real HTTP on an ephemeral port."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from contextlib import aclosing
from typing import Any

import pytest
import trio

from sora_actors.upstream import (
    ErrorKind,
    ImageInput,
    OpenAICompatProvider,
    RetryPolicy,
    SubmitRequest,
    UpstreamError,
    UpstreamJob,
    UpstreamStatus,
)
from sora_actors.upstream.fake import FaultRates, KeyLimits
from sora_actors.upstream.fake.engine import MARK_FAIL, MARK_REJECT
from sora_actors.upstream.fake.media import is_webp, media_sha256, mp4_top_level_boxes

from .conftest import Sim, SimFactory

pytestmark = pytest.mark.trio

PNG_1PX = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f8cfc0f01f0005000201e0c1b2"
    "0a0000000049454e44ae426082"
)


async def wait_done(p: OpenAICompatProvider, job_id: str, *, every: float = 0.02) -> UpstreamJob:
    with trio.fail_after(10):
        while True:
            job = await p.get(job_id)
            if job.status.terminal:
                return job
            await trio.sleep(every)


async def download(p: OpenAICompatProvider, job_id: str, variant: Any = "video") -> bytes:
    parts: list[bytes] = []
    async with aclosing(p.fetch_content(job_id, variant)) as chunks:
        async for chunk in chunks:
            parts.append(chunk)
    return b"".join(parts)


def key_requests(log: Sequence[dict[str, Any]], key: str = "k1") -> list[dict[str, Any]]:
    return [r for r in log if r["key"] == key]


async def test_full_lifecycle_text_job(sim: Sim) -> None:
    async with OpenAICompatProvider(sim.provider_config()) as p:
        job = await p.submit(SubmitRequest("a red fox", model="sora_video2", seconds=10))
        assert job.status is UpstreamStatus.QUEUED
        assert (job.model, job.seconds, job.size) == ("sora-2", "12", "720x1280")
        seen: list[UpstreamJob] = []
        with trio.fail_after(10):
            while not (cur := await p.get(job.id)).status.terminal:
                seen.append(cur)
                assert cur.poll_after_s == pytest.approx(0.25)  # 5 simulated s at x20
                await trio.sleep(0.01)
        assert cur.status is UpstreamStatus.COMPLETED and cur.is_done
        assert cur.progress == 100 and cur.completed_at is not None and cur.expires_at is not None
        progress = [j.progress for j in seen if j.status is UpstreamStatus.IN_PROGRESS]
        assert progress == sorted(progress) and len(set(progress)) >= 3
        video = await download(p, job.id)
        assert hashlib.sha256(video).hexdigest() == media_sha256("video")
        assert mp4_top_level_boxes(video)[0][0] == "ftyp"
        assert is_webp(await download(p, job.id, "thumbnail"))
        assert is_webp(await download(p, job.id, "spritesheet"))
        stats = await sim.admin.stats()
        assert stats["creates_by_key"] == {"k1": 1}
        assert stats["polls_by_job"][job.id] == len(seen) + 1


async def test_image_to_video_sends_multipart_file(sim: Sim) -> None:
    async with OpenAICompatProvider(sim.provider_config()) as p:
        img = ImageInput(PNG_1PX, "image/png", "ref.png")
        job = await p.submit(SubmitRequest("animate this", image=img, seconds=5))
        assert job.seconds == "4"
    ref = (await sim.admin.stats())["input_references"][job.id]
    assert ref == {
        "sha256": hashlib.sha256(PNG_1PX).hexdigest(),
        "content_type": "image/png",
        "filename": "ref.png",
        "size": len(PNG_1PX),
    }


async def test_list_paging_remix_and_a_job_deleted_upstream(sim: Sim) -> None:
    async with OpenAICompatProvider(sim.provider_config()) as p:
        ids = [(await p.submit(SubmitRequest(f"clip {i}"))).id for i in range(5)]
        seen: list[str] = []
        after: str | None = None
        pages = 0
        while True:
            page = await p.list_jobs(after=after, limit=2)
            pages += 1
            seen += [j.id for j in page.jobs]
            assert page.last_id == page.jobs[-1].id
            if not page.has_more:
                break
            after = page.last_id
        assert pages == 3 and seen == ids[::-1]  # newest first

        src = await wait_done(p, ids[0])
        remix = await p.remix(src.id, "same, but at night")
        assert remix.remixed_from == src.id and remix.status is UpstreamStatus.QUEUED
        sim.engine.delete(sim.provider_config().api_key, ids[1])  # deleted by someone else
        with pytest.raises(UpstreamError) as e:
            await p.get(ids[1])
        assert e.value.kind is ErrorKind.NOT_FOUND and e.value.status == 404
        assert e.value.message == f"Video with id '{ids[1]}' not found."
        assert ids[1] not in [j.id for j in (await p.list_jobs(limit=100)).jobs]


async def test_wrong_key_is_auth_error(start_sim: SimFactory) -> None:
    sim = await start_sim(api_key="right")
    async with OpenAICompatProvider(sim.provider_config(api_key="wrong")) as p:
        with pytest.raises(UpstreamError) as e:
            await p.list_jobs()
    assert e.value.kind is ErrorKind.AUTH and not e.value.retryable
    async with OpenAICompatProvider(sim.provider_config(api_key="right", auth_style="bare")) as p:
        assert (await p.list_jobs()).jobs == ()
    assert (await sim.admin.stats())["refused"] == {"auth": 1}


async def test_gateway_dialect(start_sim: SimFactory) -> None:
    sim = await start_sim(dialect="gateway")
    assert sim.base_url.endswith("/sora/v1")
    async with OpenAICompatProvider(sim.provider_config(auth_style="bearer")) as p:
        with pytest.raises(UpstreamError) as e:
            await p.list_jobs()
        assert e.value.kind is ErrorKind.AUTH
        assert e.value.message.startswith(
            "This gateway expects the bare API key"
        )  # string error body
    async with OpenAICompatProvider(sim.provider_config()) as p:
        job = await p.submit(SubmitRequest("gateway clip", seconds=10))
        assert job.status is UpstreamStatus.QUEUED and job.seconds == "10"  # was "submitted"
        statuses = set()
        with trio.fail_after(10):
            while not (cur := await p.get(job.id)).status.terminal:
                statuses.add(cur.status)
                await trio.sleep(0.01)
        assert UpstreamStatus.IN_PROGRESS in statuses  # was "processing"
        assert cur.status is UpstreamStatus.COMPLETED and cur.is_done  # was "succeeded"
        assert cur.direct_url == f"{sim.root}/__files/{job.id}/video"
        with pytest.raises(UpstreamError) as e:
            await p.get("video_nope")
        assert (
            e.value.kind is ErrorKind.NOT_FOUND
            and e.value.message == "Video with id 'video_nope' not found."
        )


@pytest.mark.parametrize("fault", ["drop", "slow", "malformed"])
async def test_create_never_retried_after_ambiguous_answer(
    start_sim: SimFactory, fault: str
) -> None:
    rates: dict[str, Any] = {fault: 1.0, "slow_s": 1.0}
    sim = await start_sim(faults=FaultRates(**rates))
    async with OpenAICompatProvider(sim.provider_config(create_timeout_s=0.3)) as p:
        with pytest.raises(UpstreamError) as e:
            await p.submit(SubmitRequest("maybe created"))
        assert e.value.kind is ErrorKind.AMBIGUOUS_CREATE and not e.value.retryable
        stats = await sim.admin.stats()
        assert stats["creates_by_key"] == {"k1": 1}
        assert stats["faults_injected"] == {fault: 1}
        assert [r["op"] for r in key_requests(await sim.admin.requests())] == ["create"]
        assert p.limiter.active_jobs == 0
        await sim.admin.faults(**{fault: 0.0})
        page = await p.list_jobs(limit=10)  # how an actor finds the job it never got an id for
        assert len(page.jobs) == 1 and page.jobs[0].id in sim.engine.jobs


async def test_find_jobs_uses_the_adapters_own_mapping(start_sim: SimFactory) -> None:
    """A create whose answer was lost is found by what this adapter sent: its model map
    ("sora-2-pro" goes out as "sora-2-custom") and its seconds (10 goes out as "12")."""
    sim = await start_sim(faults=FaultRates(drop=1.0))
    config = sim.provider_config(model_map={"sora-2-pro": "sora-2-custom"})
    request = SubmitRequest("lost answer", model="sora-2-pro", seconds=10)
    async with OpenAICompatProvider(config) as p:
        with pytest.raises(UpstreamError) as e:
            await p.submit(request)
        assert e.value.kind is ErrorKind.AMBIGUOUS_CREATE
        await sim.admin.faults(drop=0.0)
        await p.submit(SubmitRequest("another prompt", model="sora-2-pro", seconds=10))
        await p.submit(SubmitRequest("lost answer", model="sora-2", seconds=10))
        found = await p.find_jobs(request)
        assert [(j.prompt, j.model, j.seconds) for j in found] == [
            ("lost answer", "sora-2-custom", "12")
        ]
        assert found[0].id in sim.engine.jobs


async def test_on_send_runs_before_each_create_request(start_sim: SimFactory) -> None:
    """The caller hears of every create that leaves (a refused one retried included), and
    of none while the request waits for a job slot."""
    sim = await start_sim(faults=FaultRates(server_error=1.0))
    retry = RetryPolicy(max_attempts=10, base_delay_s=0.01, max_delay_s=0.02, create_attempts=3)
    sent: list[int] = []

    async def on_send() -> None:
        sent.append(len(key_requests(await sim.admin.requests())))

    async with OpenAICompatProvider(sim.provider_config(retry=retry, max_concurrent_jobs=1)) as p:
        with pytest.raises(UpstreamError):
            await p.submit(SubmitRequest("refused three times"), on_send=on_send)
        assert sent == [0, 1, 2]  # before each of the three requests, none after
        await sim.admin.faults(server_error=0.0)
        held = await p.submit(SubmitRequest("holds the only slot"))
        sent.clear()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(lambda: p.submit(SubmitRequest("waits"), on_send=on_send))
            await trio.sleep(0.2)
            assert sent == []  # still waiting for the slot: nothing has left
            p.forget(held.id)
        assert len(sent) == 1


async def test_create_retried_only_on_definite_refusals(start_sim: SimFactory) -> None:
    sim = await start_sim(faults=FaultRates(server_error=1.0))
    retry = RetryPolicy(max_attempts=10, base_delay_s=0.01, max_delay_s=0.02, create_attempts=3)
    async with OpenAICompatProvider(sim.provider_config(retry=retry)) as p:
        with pytest.raises(UpstreamError) as e:
            await p.submit(SubmitRequest("never lands"))
        assert e.value.kind is ErrorKind.TRANSIENT and e.value.status in (500, 503)
        stats = await sim.admin.stats()
        assert stats["creates_total"] == 0 and stats["refused"] == {"fault_server_error": 3}
        await sim.admin.faults(server_error=0.0, rate_limit=1.0, retry_after_ms=50)
        with pytest.raises(UpstreamError) as e:
            await p.submit(SubmitRequest("never lands either"))
        assert e.value.kind is ErrorKind.RATE_LIMITED and e.value.retry_after_s == pytest.approx(
            0.05
        )
        stats = await sim.admin.stats()
        assert stats["creates_total"] == 0 and stats["refused"]["fault_rate_limit"] == 3
        with pytest.raises(UpstreamError) as e:
            await p.submit(SubmitRequest(f"a prompt {MARK_REJECT}"))
        assert e.value.kind is ErrorKind.RATE_LIMITED
        await sim.admin.faults(rate_limit=0.0)
        with pytest.raises(UpstreamError) as e:
            await p.submit(SubmitRequest(f"a prompt {MARK_REJECT}"))
        assert e.value.kind is ErrorKind.CONTENT_POLICY and e.value.status == 400
        with pytest.raises(UpstreamError) as e:
            await p.submit(SubmitRequest("bad size", size="1x1"))
        assert e.value.kind is ErrorKind.INVALID_REQUEST and e.value.code == "invalid_value"
        assert (await sim.admin.stats())["creates_total"] == 0


@pytest.mark.parametrize("fault", ["server_error", "rate_limit", "drop", "slow", "malformed"])
async def test_polls_and_downloads_survive_faults(start_sim: SimFactory, fault: str) -> None:
    sim = await start_sim(faults=FaultRates(retry_after_ms=20, slow_s=0.5))
    async with OpenAICompatProvider(sim.provider_config(read_timeout_s=0.2)) as p:
        job = await p.submit(SubmitRequest("sturdy"))
        await sim.admin.force(job.id, "complete")
        await sim.admin.faults(**{fault: 0.4})
        for _ in range(8):
            got = await p.get(job.id)
            assert got.status is UpstreamStatus.COMPLETED
        for _ in range(3):
            assert hashlib.sha256(await download(p, job.id)).hexdigest() == media_sha256("video")
        page = await p.list_jobs()
        assert [j.id for j in page.jobs] == [job.id]
    stats = await sim.admin.stats()
    assert stats["faults_injected"].get(fault, 0) > 0
    assert stats["creates_total"] == 1


async def test_no_request_before_retry_after(start_sim: SimFactory) -> None:
    sim = await start_sim(limits=KeyLimits(requests_per_window=3, window_s=0.4))
    async with OpenAICompatProvider(sim.provider_config()) as p:
        job = await p.submit(SubmitRequest("paced"))

        async def poller() -> None:
            for _ in range(4):
                await p.get(job.id)

        async with trio.open_nursery() as n:
            for _ in range(3):
                n.start_soon(poller)
    log = key_requests(await sim.admin.requests())
    refusals = [r for r in log if r["outcome"].startswith("refused:key_rate_limit")]
    assert refusals, "the window must have been exceeded"
    assert len([r for r in log if r["outcome"] == "ok"]) == 1 + 12
    for r in refusals:
        # the client learns of the 429 after it was logged, so nothing may arrive before t + ra,
        # except requests that were already on the wire: those arrive soon after r["t"] (on
        # a busy two-core machine, within tens of milliseconds)
        blocked_from = r["t"] + 0.08
        later = [x for x in log if blocked_from < x["t"] < r["t"] + r["retry_after_s"]]
        assert later == [], (r, later)


async def test_client_limiter_caps_jobs_and_request_rate(start_sim: SimFactory) -> None:
    sim = await start_sim()
    cfg = sim.provider_config(max_concurrent_jobs=2, max_requests_per_second=40)
    async with OpenAICompatProvider(cfg) as p:

        async def actor(i: int) -> None:
            job = await p.submit(SubmitRequest(f"job {i}"))
            await wait_done(p, job.id, every=0.0)

        with trio.fail_after(30):
            async with trio.open_nursery() as n:
                for i in range(6):
                    n.start_soon(actor, i)
        assert p.limiter.statistics().peak_jobs == 2 and p.limiter.active_jobs == 0
    stats = await sim.admin.stats()
    assert stats["creates_by_key"] == {"k1": 6}
    assert stats["peak_active_by_key"]["k1"] <= 2
    times = sorted(r["t"] for r in key_requests(await sim.admin.requests()))
    assert len(times) > 20
    # paced at 40/s: the k-th request after any request arrives no sooner than k/40 s later
    # minus the jitter of arrival on a busy machine (client and simulator share one loop and
    # two cores: one late arrival shortens the next gap), so any 0.5 s window holds at most
    # 21 requests. Without pacing they would arrive within a few milliseconds of each other.
    for i, t in enumerate(times):
        for k, u in enumerate(times[i + 1 :], start=1):
            assert u - t >= k / 40 - 0.05
        assert sum(1 for u in times[i:] if u < t + 0.5) <= 21


async def test_server_concurrency_limit_is_a_definite_429(start_sim: SimFactory) -> None:
    sim = await start_sim(limits=KeyLimits(max_concurrent_jobs=1))
    retry = RetryPolicy(max_attempts=3, base_delay_s=0.01, max_delay_s=0.02, create_attempts=1)
    async with OpenAICompatProvider(sim.provider_config(retry=retry)) as p:
        first = await p.submit(SubmitRequest("one"))
        with pytest.raises(UpstreamError) as e:
            await p.submit(SubmitRequest("two"))
        assert (
            e.value.kind is ErrorKind.RATE_LIMITED and e.value.code == "concurrency_limit_exceeded"
        )
        assert p.limiter.active_jobs == 1
        await wait_done(p, first.id)
        await p.submit(SubmitRequest("two, later"))
    stats = await sim.admin.stats()
    assert stats["creates_by_key"] == {"k1": 2}
    assert stats["refused"] == {"key_concurrency_limit": 1}


async def test_content_policy_failure_and_expiry(start_sim: SimFactory) -> None:
    sim = await start_sim(content_ttl_s=3600)
    async with OpenAICompatProvider(sim.provider_config()) as p:
        bad = await p.submit(SubmitRequest(f"something {MARK_FAIL}"))
        done = await wait_done(p, bad.id)
        assert done.status is UpstreamStatus.FAILED and not done.is_done
        assert done.error_code == "moderation_blocked"
        with pytest.raises(UpstreamError) as e:
            await download(p, bad.id)
        assert e.value.kind is ErrorKind.NOT_FOUND

        await sim.admin.faults(content_policy=1.0)
        also_bad = await wait_done(p, (await p.submit(SubmitRequest("innocent"))).id)
        assert also_bad.status is UpstreamStatus.FAILED
        await sim.admin.faults(content_policy=0.0)

        good = await wait_done(p, (await p.submit(SubmitRequest("fine"))).id)
        assert good.is_done and not good.content_expired(sim.engine.now())
        await sim.admin.force(good.id, "expire")
        expired = await p.get(good.id)
        assert expired.content_expired(sim.engine.now())
        with pytest.raises(UpstreamError) as e:
            await download(p, good.id)
        assert e.value.kind is ErrorKind.NOT_FOUND and e.value.code == "video_expired"
