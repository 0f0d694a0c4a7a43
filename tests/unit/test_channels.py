"""Channels in virtual time: the circuit breaker's exact cool-downs, routing (priority, weight,
model filtering) and the guard around each channel's provider (failures open the circuit,
401 disables the channel and says so once)."""

from __future__ import annotations

import random
from collections import Counter

import pytest
import trio
import trio.testing

from sora_actors.channels import (
    CIRCUIT_OPEN,
    Channel,
    ChannelInfo,
    ChannelSet,
    CircuitBreaker,
    CircuitState,
    NoChannel,
)
from sora_actors.upstream import ErrorKind, Limiter, SubmitRequest, UpstreamError
from sora_actors.upstream.fake import MemoryProvider

pytestmark = pytest.mark.filterwarnings("ignore::trio.TrioDeprecationWarning")


def channel(name: str, *, breaker: CircuitBreaker | None = None, **info: object) -> Channel:
    provider = MemoryProvider()
    return Channel(
        ChannelInfo(name, **info),  # type: ignore[arg-type]
        provider,
        limiters=(provider.limiter,),
        breaker=breaker,
    )


async def test_breaker_opens_after_threshold_and_doubles_its_cooldown_up_to_the_cap(
    autojump_clock: trio.testing.MockClock,
) -> None:
    breaker = CircuitBreaker(threshold=3, base_s=5.0, max_s=30.0)
    t0 = trio.current_time()
    breaker.failure()
    breaker.failure()
    assert breaker.state is CircuitState.CLOSED and breaker.acquire()
    breaker.failure()  # the third in a row
    assert breaker.state is CircuitState.OPEN
    assert breaker.open_until == t0 + 5.0
    assert not breaker.acquire() and not breaker.available()

    await trio.sleep_until(t0 + 4.999)
    assert breaker.state is CircuitState.OPEN
    await trio.sleep_until(t0 + 5.0)
    assert breaker.state is CircuitState.HALF_OPEN
    assert breaker.acquire()  # the one probe
    assert not breaker.acquire() and not breaker.available()  # nobody else meanwhile
    breaker.failure()  # the probe failed: 10 s now
    assert breaker.open_until == t0 + 15.0

    expected_ends = [t0 + 15.0 + 20.0, t0 + 35.0 + 30.0, t0 + 65.0 + 30.0]  # 20, then capped
    for end in expected_ends:
        await trio.sleep_until(breaker.open_until or 0.0)
        assert breaker.acquire()
        breaker.failure()
        assert breaker.open_until == end

    await trio.sleep_until(breaker.open_until or 0.0)
    assert breaker.acquire()
    breaker.success()  # one good probe closes it and forgets the history
    assert breaker.state is CircuitState.CLOSED and breaker.opens == 0
    breaker.failure()
    breaker.failure()
    assert breaker.state is CircuitState.CLOSED
    breaker.failure()
    assert breaker.open_until == trio.current_time() + 5.0  # back to the first cool-down


async def test_a_success_between_failures_resets_the_count(
    autojump_clock: trio.testing.MockClock,
) -> None:
    breaker = CircuitBreaker(threshold=2, base_s=1.0, max_s=1.0)
    for _ in range(5):
        breaker.failure()
        breaker.success()
    assert breaker.state is CircuitState.CLOSED
    breaker.failure()
    breaker.failure()
    assert breaker.state is CircuitState.OPEN


async def test_a_cancelled_probe_lets_another_probe_go(
    autojump_clock: trio.testing.MockClock,
) -> None:
    breaker = CircuitBreaker(threshold=1, base_s=2.0, max_s=2.0)
    provider = MemoryProvider()
    ch = Channel(ChannelInfo("a"), provider, breaker=breaker)
    breaker.failure()
    await trio.sleep(2.0)
    provider.limiter.defer(1.0)  # the probe waits for the key's Retry-After...
    with trio.move_on_after(0.5):  # ...and is cancelled before any answer: no verdict
        await ch.get("video_nope")
    assert provider.calls["get"] == 1 and provider.engine.requests_total == 0
    await trio.sleep(0.5)
    assert breaker.state is CircuitState.HALF_OPEN and not breaker.probing
    with pytest.raises(UpstreamError) as raised:
        await ch.get("video_nope")  # a 404 is an answer: the channel is fine
    assert raised.value.kind is ErrorKind.NOT_FOUND
    assert breaker.state is CircuitState.CLOSED


async def test_the_guard_counts_failures_opens_the_circuit_and_refuses_without_sending(
    autojump_clock: trio.testing.MockClock,
) -> None:
    provider = MemoryProvider()
    ch = Channel(
        ChannelInfo("a"),
        provider,
        limiters=(provider.limiter,),
        breaker=CircuitBreaker(threshold=2, base_s=10.0, max_s=10.0),
    )
    request = SubmitRequest(prompt="a cat")
    provider.inject_error("submit", UpstreamError(ErrorKind.TRANSIENT, "503", status=503), count=2)
    for _ in range(2):
        with pytest.raises(UpstreamError):
            await ch.submit(request)
    assert provider.calls["submit"] == 2
    with pytest.raises(UpstreamError) as raised:
        await ch.submit(request)
    assert raised.value.kind is ErrorKind.TRANSIENT and raised.value.code == CIRCUIT_OPEN
    assert raised.value.retry_after_s == 10.0
    assert provider.calls["submit"] == 2  # refused here: nothing was sent
    stats = ch.statistics()
    assert (stats.state, stats.calls, stats.errors, stats.error_rate) == ("open", 2, 2, 1.0)
    await trio.sleep(10.0)
    job = await ch.submit(request)  # the probe
    assert job.id and ch.statistics().state == "closed"
    assert ch.statistics().error_rate == round(2 / 3, 4)


async def test_401_disables_the_channel_and_tells_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    told: list[tuple[str, str]] = []

    async def on_disabled(ch: Channel, reason: str) -> None:
        told.append((ch.name, reason))

    provider = MemoryProvider()
    ch = Channel(ChannelInfo("a"), provider, on_disabled=on_disabled)
    provider.inject_error(
        "get", UpstreamError(ErrorKind.AUTH, "Incorrect API key", status=401), count=1
    )
    with pytest.raises(UpstreamError):
        await ch.get("video_x")
    assert ch.disabled_reason is not None and "401" in ch.disabled_reason
    assert ch.statistics().state == "disabled" and not ch.usable
    with pytest.raises(UpstreamError) as raised:
        await ch.get("video_x")
    assert raised.value.kind is ErrorKind.AUTH
    assert provider.calls["get"] == 1  # the second was refused here
    assert told == [("a", ch.disabled_reason)]
    # A 403 content-policy refusal is about the request, not the key.
    other = MemoryProvider()
    ch2 = Channel(ChannelInfo("b"), other)
    other.inject_error(
        "get",
        UpstreamError(ErrorKind.CONTENT_POLICY, "moderation", status=403, code="moderation"),
        count=1,
    )
    with pytest.raises(UpstreamError):
        await ch2.get("video_x")
    assert ch2.disabled_reason is None


def test_routing_prefers_the_highest_priority_and_filters_by_model() -> None:
    low = channel("low", priority=1)
    high = channel("high", priority=5, models=("sora-2",))
    pro = channel("pro", priority=9, models=("sora-2-pro",), durations=(4, 8))
    channels = ChannelSet([low, high, pro], rng=random.Random(1))
    assert {channels.pick("sora-2", "720x1280", 4).name for _ in range(50)} == {"high"}
    assert channels.pick("sora-2-pro", "720x1280", 8).name == "pro"
    assert channels.pick("sora-2-pro", "720x1280", 12).name == "low"  # pro lacks 12 s
    assert channels.pick("other", "720x1280", 4).name == "low"
    assert channels.pick("sora-2", "720x1280", 4, exclude=["high"]).name == "low"
    high.disabled_reason = "401"
    assert channels.pick("sora-2", "720x1280", 4).name == "low"
    only = ChannelSet([channel("x", models=("sora-2",))])
    with pytest.raises(NoChannel) as raised:
        only.pick("sora-2-pro", "720x1280", 4)
    assert raised.value.reason == "unserved"
    only.channels["x"].disabled_reason = "401"
    with pytest.raises(NoChannel) as raised:
        only.pick("sora-2", "720x1280", 4)
    assert raised.value.reason == "disabled"


async def test_routing_skips_open_circuits_and_says_when_one_cools_down(
    autojump_clock: trio.testing.MockClock,
) -> None:
    first = channel("first", priority=2, breaker=CircuitBreaker(1, 7.0, 7.0))
    second = channel("second", priority=1, breaker=CircuitBreaker(1, 3.0, 3.0))
    channels = ChannelSet([first, second])
    first.breaker.failure()
    assert channels.pick("sora-2", "720x1280", 4).name == "second"
    second.breaker.failure()
    with pytest.raises(NoChannel) as raised:
        channels.pick("sora-2", "720x1280", 4)
    assert (raised.value.reason, raised.value.retry_after_s) == ("unavailable", 3.0)
    await trio.sleep(3.0)
    assert channels.pick("sora-2", "720x1280", 4).name == "second"
    await trio.sleep(4.0)
    assert channels.pick("sora-2", "720x1280", 4).name == "first"


def test_weight_splits_the_load_within_a_priority() -> None:
    heavy, light = channel("heavy", weight=3.0), channel("light", weight=1.0)
    backup = channel("backup", priority=-1, weight=100.0)
    channels = ChannelSet([heavy, light, backup], rng=random.Random(7))
    picks = Counter(channels.pick("sora-2", "720x1280", 4).name for _ in range(20_000))
    assert picks["backup"] == 0
    assert abs(picks["heavy"] / 20_000 - 0.75) < 0.015
    assert abs(picks["light"] / 20_000 - 0.25) < 0.015


async def test_a_full_channel_yields_to_one_with_a_free_slot_at_the_same_priority() -> None:
    full, free = MemoryProvider(max_concurrent_jobs=1), MemoryProvider(max_concurrent_jobs=1)
    channels = ChannelSet(
        [
            Channel(ChannelInfo("full", weight=1000.0), full, limiters=(full.limiter,)),
            Channel(ChannelInfo("free"), free, limiters=(free.limiter,)),
        ],
        rng=random.Random(3),
    )
    await channels.channels["full"].submit(SubmitRequest(prompt="fills the slot"))
    assert {channels.pick("sora-2", "720x1280", 4).name for _ in range(20)} == {"free"}
    await channels.channels["free"].submit(SubmitRequest(prompt="fills this one too"))
    # Nothing free anywhere: back to weights (the create then waits for a slot).
    assert Counter(channels.pick("sora-2", "720x1280", 4).name for _ in range(200))["full"] > 150


def test_unknown_or_missing_channel_names_fall_back_to_the_default() -> None:
    a, default = channel("a"), channel("default")
    channels = ChannelSet([a, default])
    assert channels.get(None) is default and channels.get("gone") is default
    assert channels.get("a") is a
    assert ChannelSet([a]).get(None) is a
    assert channels.named("a") is a and channels.named("gone") is None
    assert isinstance(channels.channels["a"].limiters[0], Limiter)


def test_a_replaced_channel_serves_its_tasks_and_a_retired_one_only_its_running_tasks() -> None:
    a, b, default = channel("a", priority=5), channel("b"), channel("default")
    channels = ChannelSet([a, b, default])
    replacement = channel("a", priority=5)
    channels.put(replacement)
    # Tasks look their channel up at each call: those on "a" get the replacement at once.
    assert (
        channels.get("a") is replacement and channels.pick("sora-2", "720x1280", 4) is replacement
    )
    channels.retire("a")
    assert channels.get("a") is replacement, "a running task keeps its deleted channel"
    assert channels.named("a") is None and "a" not in channels.channels
    assert {channels.pick("sora-2", "720x1280", 4).name for _ in range(20)} == {"b", "default"}
    channels.retire("default")
    assert channels.get(None) is default, "tasks stored before channels keep theirs too"
    with pytest.raises(ValueError):
        channels.retire("b")
    fresh = channel("a")
    channels.put(fresh)  # created again after its delete: a new channel of that name
    assert channels.get("a") is fresh and "a" not in channels.retired
