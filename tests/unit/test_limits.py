"""Rate limits, the password-hashing gate, WebSocket budgets and the proxy resolver.

Everything time-dependent runs in virtual time with exact assertions.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
import trio
import trio.testing

from sora_actors.http.envelope import ApiError
from sora_actors.http.gate import BusyGate
from sora_actors.http.proxies import TrustedProxies, parse_networks
from sora_actors.http.ratelimit import ApiRateLimits, RateLimiter, request_kind
from sora_actors.http.wslimits import WsLimits
from sora_actors.hub import Hub
from sora_actors.settings import Settings, SettingsError
from tests.conftest import make_settings

T = TypeVar("T")


def run(scenario: Callable[[], Awaitable[T]]) -> T:
    return trio.run(scenario, clock=trio.testing.MockClock(autojump_threshold=0))


def limited_settings(tmp_path: Path, **overrides: Any) -> Settings:
    return make_settings(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'x.db'}", **overrides)


# -- RateLimiter (GCRA) -------------------------------------------------------------------


def test_rate_limiter_allows_a_burst_then_one_per_interval() -> None:
    async def scenario() -> list[float]:
        limiter = RateLimiter(3, 60)  # 3 per minute: a burst of 3, then one every 20 s
        waits = [limiter.acquire("a") for _ in range(4)]
        waits.append(limiter.acquire("b"))  # another key is unaffected
        await trio.sleep(19)
        waits.append(limiter.acquire("a"))
        await trio.sleep(1)  # t=20
        waits.append(limiter.acquire("a"))
        waits.append(limiter.acquire("a"))
        await trio.sleep(100)  # idle time refills the burst, never beyond it
        waits.extend(limiter.acquire("a") for _ in range(4))
        return waits

    assert run(scenario) == [0, 0, 0, 20, 0, 1, 0, 20, 0, 0, 0, 20]


def test_rate_limiter_memory_is_bounded_and_forgets() -> None:
    async def scenario() -> tuple[int, float]:
        limiter = RateLimiter(1, 60, max_keys=10)
        for i in range(100):
            limiter.acquire(f"k{i}")
        size = len(limiter)
        limiter.forget("k99")
        return size, limiter.acquire("k99")

    assert run(scenario) == (10, 0)


def test_api_limits_per_user_and_address_divided_by_instances(tmp_path: Path) -> None:
    settings = limited_settings(
        tmp_path,
        rate_limit_create_per_user=4,
        rate_limit_create_per_address=6,
        rate_limit_read_per_user=0,  # off
        rate_limit_read_per_address=0,
        rate_limit_instances=2,
    )

    async def scenario() -> list[object]:
        limits = ApiRateLimits(settings)
        outcomes: list[object] = []
        for address, user in [("a", "u1")] * 3 + [("a", "u2")] * 2 + [("b", "u2")] * 2:
            try:
                limits.check("create", address, user)
                outcomes.append("ok")
            except ApiError as error:
                assert error.status == 429 and error.code == "RATE_LIMITED"
                outcomes.append((error.details["scope"], error.headers["Retry-After"]))
        for _ in range(100):
            limits.check("read", "a", "u1")  # reads are not limited here
        return outcomes

    # Per instance: 2 creates per user and 3 per address per minute (one per 30/20 s).
    assert run(scenario) == [
        "ok",
        "ok",
        ("user", "30"),
        "ok",  # u2's first: the address's third
        ("address", "20"),  # not counted against u2 either
        "ok",  # u2 from b: a fresh address, u2's second
        ("user", "30"),
    ]


def test_request_kinds() -> None:
    assert request_kind("POST", "/api/video/tasks") == "create"
    assert request_kind("POST", "/api/video/tasks/video_1/remix") == "create"
    assert request_kind("GET", "/api/video/tasks") == "read"
    assert request_kind("POST", "/api/video/tasks/video_1/cancel") == "read"
    assert request_kind("OPTIONS", "/api/video/tasks") is None
    assert request_kind("GET", "/api/auth/me") is None


# -- BusyGate ---------------------------------------------------------------------------


def test_busy_gate_runs_capacity_queues_a_few_and_refuses_the_rest() -> None:
    async def scenario() -> tuple[list[tuple[int, int]], list[str], list[float]]:
        gate = BusyGate(capacity=2, queue=3)
        states: list[tuple[int, int]] = []
        refusals: list[str] = []
        finished: list[float] = []

        async def job() -> None:
            try:
                async with gate.slot():
                    await trio.sleep(1)
                finished.append(trio.current_time())
            except ApiError as error:
                assert error.status == 503 and error.code == "SERVER_BUSY"
                refusals.append(error.headers["Retry-After"])

        async with trio.open_nursery() as nursery:
            for _ in range(10):
                nursery.start_soon(job)
            await trio.testing.wait_all_tasks_blocked()
            states.append((gate.running, gate.waiting))
        states.append((gate.running, gate.waiting))
        return states, refusals, finished

    states, refusals, finished = run(scenario)
    assert states == [(2, 3), (0, 0)]
    assert refusals == ["1"] * 5
    assert finished == [1, 1, 2, 2, 3]


# -- WebSocket limits -------------------------------------------------------------------


def test_ws_message_budget_and_subscription_caps(tmp_path: Path) -> None:
    settings = limited_settings(
        tmp_path,
        ws_messages_per_second=2,
        ws_message_burst=4,
        ws_max_subscriptions_per_connection=2,
        ws_max_subscriptions_per_user=3,
    )

    async def scenario() -> list[object]:
        hub, limits = Hub(), WsLimits(settings)
        one, two = hub.connect("c1"), hub.connect("c2")
        seen: list[object] = [[limits.message(one) for _ in range(5)]]  # burst of 4
        await trio.sleep(0.5)  # one more after 1/rate s
        seen.append([limits.message(one), limits.message(one), limits.message(two)])
        for sub in (one, two):
            hub.authenticate(sub, "u1", 0)
            limits.authenticated(sub)
        for video in ("v1", "v2"):
            assert limits.subscription_refused(one, video) is None
            hub.subscribe_task(one, video)
        seen.append(limits.subscription_refused(one, "v3"))
        seen.append(limits.subscription_refused(one, "v1"))  # already held: fine
        assert limits.subscription_refused(two, "v3") is None
        hub.subscribe_task(two, "v3")
        seen.append(limits.subscription_refused(two, "v4"))
        hub.disconnect(one)
        limits.gone(one)
        seen.append(limits.subscription_refused(two, "v4"))
        return seen

    assert run(scenario) == [
        [True, True, True, True, False],
        [True, False, True],
        "at most 2 task subscriptions per connection",
        None,
        "at most 3 task subscriptions per user",
        None,
    ]


# -- Trusted proxies --------------------------------------------------------------------


def test_forwarded_addresses_are_believed_only_from_trusted_proxies() -> None:
    proxies = TrustedProxies(parse_networks(["127.0.0.1/32", "10.0.0.0/8", "::1"]))
    client = proxies.client
    assert client("127.0.0.1", [], ["203.0.113.9"]) == "203.0.113.9"
    assert client("192.0.2.7", [], ["203.0.113.9"]) == "192.0.2.7"  # untrusted peer
    # A client's own (forged) entries stand left of what our proxies saw.
    assert client("127.0.0.1", [], ["1.1.1.1, 6.6.6.6", "203.0.113.9"]) == "203.0.113.9"
    assert client("127.0.0.1", [], ["6.6.6.6, 203.0.113.9, 10.1.2.3"]) == "203.0.113.9"
    assert client("127.0.0.1", [], []) == "127.0.0.1"  # the proxy's own request
    assert client("127.0.0.1", [], ["10.0.0.1, 10.0.0.2"]) == "10.0.0.1"  # all trusted
    assert client("::1", [], ["2001:db8::5"]) == "2001:db8::5"
    assert (
        client("127.0.0.1", ['for=6.6.6.6, for="[2001:db8::1]:4711";proto=https'], ["9.9.9.9"])
        == "2001:db8::1"
    )  # Forwarded wins over X-Forwarded-For
    assert client("127.0.0.1", [], ["203.0.113.9:5555"]) == "203.0.113.9"
    assert client("127.0.0.1", [], ["garbage"]) == "garbage"
    assert client(None, [], ["203.0.113.9"]) == "unknown"
    assert TrustedProxies(()).client("127.0.0.1", [], ["203.0.113.9"]) == "127.0.0.1"


def test_trusted_proxies_setting_is_validated(tmp_path: Path) -> None:
    settings = limited_settings(tmp_path, trusted_proxies="127.0.0.1/32, 10.0.0.0/8")
    assert settings.trusted_proxies == ("127.0.0.1/32", "10.0.0.0/8")
    assert limited_settings(tmp_path).trusted_proxies == ()
    with pytest.raises(SettingsError, match="TRUSTED_PROXIES"):
        limited_settings(tmp_path, trusted_proxies="10.0.0.0/8,not-a-network")
