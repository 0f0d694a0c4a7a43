from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest
import trio
import trio.testing

from sora_actors.http.envelope import ApiError
from sora_actors.http.security import TokenError, Tokens
from sora_actors.http.throttle import LoginThrottle

T = TypeVar("T")


def refused(throttle: LoginThrottle, address: str, username: str) -> str | None:
    """The Retry-After of a refused attempt, or None (and the attempt counts as right)."""
    try:
        with throttle.attempt(address, username):
            return None
    except ApiError as error:
        assert error.status == 429 and error.code == "TOO_MANY_LOGIN_ATTEMPTS"
        return error.headers["Retry-After"]


def fail(throttle: LoginThrottle, address: str, username: str) -> None:
    with throttle.attempt(address, username) as attempt:
        attempt.failed()


def run(scenario: Callable[[], Awaitable[T]]) -> T:
    return trio.run(scenario, clock=trio.testing.MockClock(autojump_threshold=0))


def test_address_lockout_doubles_up_to_its_bound_and_then_decays() -> None:
    async def scenario() -> list[object]:
        throttle = LoginThrottle(5, 300, account_max_failures=100, lockout=60, lockout_max=200)
        seen: list[object] = []
        for i in range(5):  # failures at t=0..4, each against another account
            fail(throttle, "1.2.3.4", f"user{i}")
            await trio.sleep(1)
        seen.append(refused(throttle, "1.2.3.4", "mine"))  # t=5, locked until 64
        seen.append(refused(throttle, "5.6.7.8", "mine"))  # another address is free
        await trio.sleep(59)  # t=64
        for _ in range(5):
            fail(throttle, "1.2.3.4", "x")
        seen.append(refused(throttle, "1.2.3.4", "x"))  # second lockout: 120 s
        await trio.sleep(119)  # t=183
        seen.append(refused(throttle, "1.2.3.4", "x"))
        await trio.sleep(1)  # t=184
        for _ in range(5):
            fail(throttle, "1.2.3.4", "x")
        seen.append(refused(throttle, "1.2.3.4", "x"))  # third: 240 s, capped at 200
        await trio.sleep(200 + 200)  # quiet for lockout_max after it ended
        for _ in range(5):
            fail(throttle, "1.2.3.4", "x")
        seen.append(refused(throttle, "1.2.3.4", "x"))  # starts over at 60 s
        return seen

    assert run(scenario) == ["59", None, "120", "1", "200", "60"]


def test_failures_leave_the_window() -> None:
    async def scenario() -> list[str | None]:
        throttle = LoginThrottle(3, 60, lockout=30)
        for _ in range(2):
            fail(throttle, "a", "u")
        await trio.sleep(60)  # both are out of the window now
        fail(throttle, "a", "u")
        first = refused(throttle, "a", "u")
        fail(throttle, "a", "u")
        fail(throttle, "a", "u")
        return [first, refused(throttle, "a", "u")]

    assert run(scenario) == [None, "30"]


def test_concurrent_guesses_are_counted_before_they_are_checked() -> None:
    async def scenario() -> tuple[int, list[str]]:
        throttle = LoginThrottle(5, 300, lockout=60)
        evaluated = 0
        retry: list[str] = []

        async def guess() -> None:
            nonlocal evaluated
            try:
                with throttle.attempt("1.2.3.4", "victim") as attempt:
                    evaluated += 1
                    await trio.sleep(1)  # the password check takes a while
                    attempt.failed()
            except ApiError as error:
                retry.append(error.headers["Retry-After"])

        async with trio.open_nursery() as nursery:
            for _ in range(60):
                nursery.start_soon(guess)
        retry.append(refused(throttle, "1.2.3.4", "victim") or "open")  # t=1: locked out
        return evaluated, retry

    evaluated, retry = run(scenario)
    assert evaluated == 5
    assert retry == ["1"] * 55 + ["60"]  # 55 refused while five were in flight


def test_a_right_password_does_not_reset_the_failures() -> None:
    async def scenario() -> str | None:
        throttle = LoginThrottle(5, 300, lockout=60)
        for i in range(4):
            fail(throttle, "1.2.3.4", f"victim{i}")
        assert refused(throttle, "1.2.3.4", "attacker") is None  # own account, right password
        fail(throttle, "1.2.3.4", "victim9")
        return refused(throttle, "1.2.3.4", "attacker")

    assert run(scenario) == "60"


def test_an_account_is_locked_across_addresses_for_a_bounded_time() -> None:
    async def scenario() -> tuple[int, list[str | None]]:
        throttle = LoginThrottle(5, 300, account_max_failures=10, lockout=60, lockout_max=3600)
        evaluated = 0
        for address in range(5):
            for _ in range(5):
                try:
                    with throttle.attempt(f"10.0.0.{address}", "Victim") as attempt:
                        evaluated += 1
                        attempt.failed()
                except ApiError:
                    pass
        seen = [
            refused(throttle, "192.0.2.1", "victim"),  # the owner, elsewhere: refused too
            refused(throttle, "192.0.2.1", "VICTIM"),  # however the name is spelt
            refused(throttle, "192.0.2.1", "someone-else"),
        ]
        await trio.sleep(60)
        seen.append(refused(throttle, "192.0.2.1", "victim"))  # bounded: the owner is back
        return evaluated, seen

    assert run(scenario) == (10, ["60", "60", None, None])


def test_an_attempt_never_judged_gives_its_place_back() -> None:
    async def scenario() -> str | None:
        throttle = LoginThrottle(2, 300, lockout=60)
        for _ in range(10):
            with pytest.raises(ApiError), throttle.attempt("a", "u"):
                raise ApiError(503, "SERVER_BUSY", "busy")
        return refused(throttle, "a", "u")

    assert run(scenario) is None


def test_throttle_memory_is_bounded() -> None:
    async def scenario() -> tuple[int, int]:
        throttle = LoginThrottle(max_failures=3, window=60, max_keys=100)
        for i in range(1000):
            fail(throttle, f"10.0.{i // 256}.{i % 256}", f"user{i}")
        return len(throttle.addresses), len(throttle.accounts)

    assert run(scenario) == (100, 100)


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
