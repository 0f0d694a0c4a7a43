from __future__ import annotations

import pytest
import trio
import trio.testing

from sora_actors.http.envelope import ApiError
from sora_actors.http.security import TokenError, Tokens
from sora_actors.http.throttle import LoginThrottle


async def _throttle_scenario() -> list[str]:
    throttle = LoginThrottle(max_failures=3, window=60)
    seen: list[str] = []
    for _ in range(3):
        throttle.check("1.2.3.4")
        throttle.failed("1.2.3.4")
        await trio.sleep(10)  # failures at t=0, 10, 20
    with pytest.raises(ApiError) as limited:
        throttle.check("1.2.3.4")
    seen.append(limited.value.headers["Retry-After"])  # oldest (t=0) leaves at t=60 -> 30 s
    throttle.check("5.6.7.8")  # another client is unaffected
    await trio.sleep(30)  # t=60: the first failure has left the window
    throttle.check("1.2.3.4")
    seen.append("open")
    throttle.failed("1.2.3.4")
    with pytest.raises(ApiError):
        throttle.check("1.2.3.4")
    throttle.succeeded("1.2.3.4")
    throttle.check("1.2.3.4")
    seen.append("reset")
    return seen


def test_login_throttle_in_virtual_time() -> None:
    clock = trio.testing.MockClock(autojump_threshold=0)
    assert trio.run(_throttle_scenario, clock=clock) == ["30", "open", "reset"]


def test_throttle_memory_is_bounded() -> None:
    async def scenario() -> int:
        throttle = LoginThrottle(max_failures=3, window=60, max_clients=100)
        for i in range(1000):
            throttle.failed(f"10.0.{i // 256}.{i % 256}")
        return len(throttle._failures)

    assert trio.run(scenario) == 100


def test_tokens_round_trip_and_reject_tampering() -> None:
    tokens = Tokens("k" * 40, ttl_seconds=60)
    token, principal = tokens.issue("user-1", "ann")
    assert tokens.verify(token) == principal
    with pytest.raises(TokenError) as wrong_key:
        Tokens("z" * 40, 60).verify(token)
    assert wrong_key.value.code == "INVALID_TOKEN"
    head, body, signature = token.split(".")
    with pytest.raises(TokenError):
        tokens.verify(f"{head}.{body}.{signature[::-1]}")
