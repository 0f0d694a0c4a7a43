"""MemoryProvider, Limiter and engine timelines in virtual time (autojump MockClock), exactly."""

from __future__ import annotations

import random
import time
import tracemalloc
from contextlib import aclosing
from itertools import pairwise

import pytest
import trio
import trio.testing

from sora_actors.upstream import (
    ErrorKind,
    Limiter,
    Provider,
    RetryPolicy,
    SubmitRequest,
    UpstreamError,
    UpstreamStatus,
)
from sora_actors.upstream.fake import (
    DurationDistribution,
    FaultRates,
    KeyLimits,
    MemoryProvider,
    SimulatorConfig,
)
from sora_actors.upstream.fake.engine import Engine
from sora_actors.upstream.fake.media import media_bytes

pytestmark = pytest.mark.trio

FIXED = DurationDistribution(
    queue_min_s=10, queue_max_s=10, run_median_s=100, run_sigma=0, run_min_s=100, run_max_s=100
)


def fixed_config(**kw: object) -> SimulatorConfig:
    return SimulatorConfig(durations=FIXED, **kw)  # type: ignore[arg-type]


async def test_timeline_is_exact_and_progress_uneven(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with MemoryProvider(fixed_config(content_ttl_s=600)) as p:
        assert isinstance(p, Provider)
        job = await p.submit(SubmitRequest("timeline"))
        t0 = trio.current_time()
        await trio.sleep(9.999)
        assert (await p.get(job.id)).status is UpstreamStatus.QUEUED
        await trio.sleep(0.002)
        first = await p.get(job.id)
        assert first.status is UpstreamStatus.IN_PROGRESS and first.progress == 0
        samples = []
        for _ in range(19):
            await trio.sleep(5)
            samples.append((await p.get(job.id)).progress)
        assert trio.current_time() - t0 == pytest.approx(105.001)
        assert samples == sorted(samples) and samples[-1] <= 99
        steps = [b - a for a, b in pairwise(samples)]
        assert max(steps) - min(steps) >= 3, steps  # not a straight line
        await trio.sleep(4.998)
        assert (await p.get(job.id)).status is UpstreamStatus.IN_PROGRESS
        await trio.sleep(0.002)
        done = await p.get(job.id)
        assert done.status is UpstreamStatus.COMPLETED and done.progress == 100
        assert done.completed_at is not None and done.created_at is not None
        assert done.completed_at - done.created_at in (109, 110, 111)  # int seconds on the wire
        assert done.expires_at == pytest.approx(done.completed_at + 600, abs=1)
        assert done.poll_after_s == 5.0
        assert p.polls(job.id) == 1 + 1 + 19 + 2


async def test_same_seed_same_jobs(autojump_clock: trio.testing.MockClock) -> None:
    runs = []
    for _ in range(2):
        eng = Engine(SimulatorConfig(seed=42))
        jobs = [eng.create("k", f"p{i}") for i in range(5)]
        runs.append([(j.id, j.start - j.created, j.done - j.created, j.shape) for j in jobs])
    assert runs[0] == runs[1]
    durations = [d for _, _, d, _ in runs[0]]
    assert all(47 <= d <= 180 for d in durations) and len(set(durations)) == 5


async def test_retry_after_gate_is_exact(autojump_clock: trio.testing.MockClock) -> None:
    lim = Limiter()
    t0 = trio.current_time()
    lim.defer(2.5)
    lim.defer(1.0)  # a shorter Retry-After never shortens the gate
    await lim.wait_turn()
    assert trio.current_time() - t0 == 2.5


async def test_rate_is_exact(autojump_clock: trio.testing.MockClock) -> None:
    lim = Limiter(max_requests_per_second=4)
    t0 = trio.current_time()
    times: list[float] = []

    async def one() -> None:
        await lim.wait_turn()
        times.append(trio.current_time() - t0)

    async with trio.open_nursery() as n:
        for _ in range(10):
            n.start_soon(one)
    assert sorted(times) == [i * 0.25 for i in range(10)]


async def test_429_from_key_window_closes_gate_until_retry_after(
    autojump_clock: trio.testing.MockClock,
) -> None:
    cfg = fixed_config(limits=KeyLimits(requests_per_window=2, window_s=10))
    async with MemoryProvider(cfg) as p:
        t0 = trio.current_time()
        job = await p.submit(SubmitRequest("x"))  # request 1 at t0
        await trio.sleep(3)
        await p.get(job.id)  # request 2 at t0+3
        with pytest.raises(UpstreamError) as e:
            await p.get(job.id)  # refused: window full until t0+10
        assert e.value.kind is ErrorKind.RATE_LIMITED and e.value.retry_after_s == pytest.approx(7)
        await p.get(job.id)  # the gate holds it back to exactly t0+10
        assert trio.current_time() - t0 == pytest.approx(10)
        log = [(t - t0, outcome) for t, _, _, _, outcome, _, _ in p.engine.request_log]
        assert log == [
            (0, "ok"),
            (pytest.approx(3), "ok"),
            (pytest.approx(3), "refused:key_rate_limit"),
            (pytest.approx(10), "ok"),
        ]


async def test_job_slots_cap_concurrency(autojump_clock: trio.testing.MockClock) -> None:
    async with MemoryProvider(fixed_config(), max_concurrent_jobs=2) as p:
        t0 = trio.current_time()
        submitted_at: list[float] = []

        async def actor(i: int) -> None:
            job = await p.submit(SubmitRequest(f"j{i}"))
            submitted_at.append(trio.current_time() - t0)
            while not (await p.get(job.id)).status.terminal:
                await trio.sleep(30)

        async with trio.open_nursery() as n:
            for i in range(5):
                n.start_soon(actor, i)
        # each job runs 110 s and is seen terminal on the poll at 120 s after its submit
        assert sorted(submitted_at) == [0, 0, 120, 120, 240]
        assert p.limiter.statistics().peak_jobs == 2 and p.limiter.active_jobs == 0
        assert p.engine.peak_active_by_key["memory"] == 2
        assert p.creates == 5


async def test_resumed_job_reoccupies_slot(autojump_clock: trio.testing.MockClock) -> None:
    engine = Engine(fixed_config())
    async with MemoryProvider(engine=engine) as before_restart:
        job = await before_restart.submit(SubmitRequest("survives a restart"))
    async with MemoryProvider(engine=engine, max_concurrent_jobs=1) as after_restart:
        await after_restart.get(job.id)  # actor resumes and polls: slot taken again
        assert after_restart.limiter.active_jobs == 1
        with trio.move_on_after(50) as scope:
            await after_restart.submit(SubmitRequest("must wait"))
        assert scope.cancelled_caught and engine.creates_by_key["memory"] == 1
        await trio.sleep(100)
        assert (await after_restart.get(job.id)).status is UpstreamStatus.COMPLETED
        assert after_restart.limiter.active_jobs == 0
        await after_restart.submit(SubmitRequest("now it may"))
        assert engine.creates_by_key["memory"] == 2


async def test_injected_errors_and_retry_backoff(autojump_clock: trio.testing.MockClock) -> None:
    async with MemoryProvider(fixed_config()) as p:
        job = await p.submit(SubmitRequest("x"))
        p.inject_error("get", UpstreamError(ErrorKind.TRANSIENT, "boom", status=503), count=2)
        for _ in range(2):
            with pytest.raises(UpstreamError) as e:
                await p.get(job.id)
            assert e.value.kind is ErrorKind.TRANSIENT
        assert (await p.get(job.id)).status is UpstreamStatus.QUEUED
        assert p.calls["get"] == 3 and p.polls(job.id) == 1  # injected failures never reach it

    retry = RetryPolicy(max_attempts=3, base_delay_s=1.0, max_delay_s=4.0)
    async with MemoryProvider(fixed_config(), retry=retry, rng=random.Random(7)) as p:
        job = await p.submit(SubmitRequest("x"))
        p.inject_error("get", UpstreamError(ErrorKind.TIMEOUT, "slow"), count=2)
        t0 = trio.current_time()
        await p.get(job.id)
        r = random.Random(7)
        expected = retry.backoff(1, r.random()) + retry.backoff(2, r.random())
        assert trio.current_time() - t0 == pytest.approx(expected)
        assert 0.5 + 1.0 <= expected <= 1.0 + 2.0
        p.inject_error("get", UpstreamError(ErrorKind.AUTH, "nope"), count=1)
        with pytest.raises(UpstreamError):  # not retryable: raised on the first attempt
            await p.get(job.id)
        assert p.calls["get"] == 3 + 1


async def test_ambiguous_create_then_found_by_listing(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with MemoryProvider(fixed_config()) as p:
        p.inject_error("submit", UpstreamError(ErrorKind.AMBIGUOUS_CREATE, "lost"), after=True)
        with pytest.raises(UpstreamError) as e:
            await p.submit(SubmitRequest("did it land?"))
        assert e.value.kind is ErrorKind.AMBIGUOUS_CREATE and p.creates == 1
        page = await p.list_jobs(limit=10)
        assert len(page.jobs) == 1 and not page.has_more
        assert p.limiter.active_jobs == 0
        await p.get(page.jobs[0].id)  # adopting it re-occupies a slot
        assert p.limiter.active_jobs == 1


async def test_memory_faults_match_simulator_rules(autojump_clock: trio.testing.MockClock) -> None:
    async with MemoryProvider(fixed_config(faults=FaultRates(drop=1.0))) as p:
        with pytest.raises(UpstreamError) as e:
            await p.submit(SubmitRequest("x"))
        assert e.value.kind is ErrorKind.AMBIGUOUS_CREATE and p.creates == 1
    async with MemoryProvider(fixed_config(faults=FaultRates(server_error=1.0))) as p:
        with pytest.raises(UpstreamError) as e:
            await p.submit(SubmitRequest("x"))
        assert e.value.kind is ErrorKind.TRANSIENT and p.creates == 0


async def test_force_fail_complete_expire(autojump_clock: trio.testing.MockClock) -> None:
    async with MemoryProvider(fixed_config()) as p:
        a = await p.submit(SubmitRequest("a"))
        b = await p.submit(SubmitRequest("b"))
        p.force_fail(a.id)
        failed = await p.get(a.id)
        assert failed.status is UpstreamStatus.FAILED and failed.error_code == "moderation_blocked"
        assert not failed.is_done
        p.force_complete(b.id)
        assert (await p.get(b.id)).is_done
        async with aclosing(p.fetch_content(b.id)) as chunks:
            data = b"".join([c async for c in chunks])
        assert data == media_bytes("video")
        p.force_expire(b.id)
        with pytest.raises(UpstreamError) as e:
            async with aclosing(p.fetch_content(b.id)) as chunks:
                async for _ in chunks:
                    pass
        assert e.value.kind is ErrorKind.NOT_FOUND and e.value.code == "video_expired"


async def test_ten_thousand_jobs_small_and_fast(autojump_clock: trio.testing.MockClock) -> None:
    n = 10_000
    started = time.perf_counter()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    async with MemoryProvider(SimulatorConfig(seed=3)) as p:
        ids = [(await p.submit(SubmitRequest("a short prompt"))).id for _ in range(n)]
        per_job = (tracemalloc.get_traced_memory()[0] - before) / n
        tracemalloc.stop()
        await trio.sleep(200)  # longer than any drawn duration (<= 20 + 160 s)
        states = [(await p.get(i)).status for i in ids]
    elapsed = time.perf_counter() - started
    assert states.count(UpstreamStatus.COMPLETED) == n
    assert p.engine.peak_active_by_key["memory"] == n
    print(f"10k jobs: {per_job:.0f} B/job, {elapsed:.2f} s")
    assert per_job < 1200, per_job  # bytes of engine state per job
    assert elapsed < 15, elapsed
