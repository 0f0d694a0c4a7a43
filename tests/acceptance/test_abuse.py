"""Abuse and limits over real HTTP (issue 12, section 4): password guessing, bcrypt floods,
registrations, proxies and the API's rate limits.

Outcomes are asserted, never timings; the exact times of every limit are asserted in
virtual time in tests/unit/test_throttle_and_tokens.py and tests/unit/test_limits.py.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import httpx2
import trio

from tests.conftest import make_settings
from tests.harness import LiveServer, assert_error, live_server

PROXIED = {"trusted_proxies": "127.0.0.1/32"}


def via(address: str) -> dict[str, str]:
    """Headers of a request that our (trusted, local) proxy forwarded for ``address``."""
    return {"X-Forwarded-For": address}


async def login(
    server: LiveServer, username: str, password: str, headers: dict[str, str] | None = None
) -> httpx2.Response:
    return await server.client.post(
        "/api/auth/login", json={"username": username, "password": password}, headers=headers
    )


async def activities(server: LiveServer, action: str) -> list[dict[str, Any]]:
    entries = await server.services.storage.accounts.activities(limit=1000)
    return [entry for entry in entries if entry["action"] == action]


# -- password guessing ------------------------------------------------------------------


async def test_concurrent_wrong_guesses_from_one_address_are_counted_before_checking(
    tmp_path: Path, sqlite_url: str
) -> None:
    settings = make_settings(tmp_path, sqlite_url, password_hash_queue=100)
    async with live_server(settings) as server:
        await server.register("victim")
        statuses: list[int] = []

        async def guess(i: int) -> None:
            response = await login(server, "victim", f"wrong-guess-{i}")
            if response.status_code == 429:
                assert_error(response, 429, "TOO_MANY_LOGIN_ATTEMPTS")
                assert int(response.headers["Retry-After"]) >= 1
            statuses.append(response.status_code)

        async with trio.open_nursery() as nursery:
            for i in range(60):
                nursery.start_soon(guess, i)
        assert Counter(statuses) == {401: 5, 429: 55}
        assert len(await activities(server, "login_failed")) == 5  # exactly 5 evaluated
        # Locked out: the right password is refused too, without being checked.
        assert_error(await login(server, "victim", "password-1"), 429, "TOO_MANY_LOGIN_ATTEMPTS")


async def test_guesses_from_many_addresses_lock_the_account(
    tmp_path: Path, sqlite_url: str
) -> None:
    settings = make_settings(tmp_path, sqlite_url, login_account_max_failures=10, **PROXIED)
    async with live_server(settings) as server:
        await server.register("victim")
        await server.register("bystander")
        statuses = []
        for address in range(5):
            for i in range(5):
                response = await login(server, "victim", f"guess-{i}", via(f"198.51.100.{address}"))
                statuses.append(response.status_code)
        assert Counter(statuses) == {401: 10, 429: 15}
        owner = await login(server, "victim", "password-1", via("192.0.2.50"))
        body = assert_error(owner, 429, "TOO_MANY_LOGIN_ATTEMPTS")
        # Real time here: the range only; the exact lockout times are asserted in virtual
        # time in tests/unit/test_throttle_and_tokens.py.
        assert 1 <= int(owner.headers["Retry-After"]) <= 60, body
        # Only that account: another user from the same place logs in.
        assert (await login(server, "bystander", "password-1", via("192.0.2.50"))).is_success


async def test_a_right_password_does_not_reset_the_address(tmp_path: Path, sqlite_url: str) -> None:
    settings = make_settings(tmp_path, sqlite_url)
    async with live_server(settings) as server:
        await server.register("attacker")
        for round_ in range(2):
            for i in range(2):
                response = await login(server, f"target{round_}{i}", "wrong-password")
                assert response.status_code == 401
            # Logging in to one's own account in between used to wipe the failures.
            assert (await login(server, "attacker", "password-1")).is_success
        assert (await login(server, "target9", "wrong-password")).status_code == 401  # fifth
        assert_error(await login(server, "target9", "wrong"), 429, "TOO_MANY_LOGIN_ATTEMPTS")


# -- proxies ----------------------------------------------------------------------------


async def test_client_address_from_trusted_proxies_only(tmp_path: Path, sqlite_url: str) -> None:
    async with live_server(make_settings(tmp_path / "a", sqlite_url, **PROXIED)) as server:
        await server.client.post(
            "/api/auth/register",
            json={"username": "ann", "password": "password-1"},
            headers=via("6.6.6.6, 203.0.113.9"),  # the left entry is the client's own claim
        )
        assert [e["ip"] for e in await activities(server, "register")] == ["203.0.113.9"]
        # One client's typos lock out that client only, not everyone behind the proxy.
        for _ in range(5):
            assert (await login(server, "ann", "typo-typo", via("203.0.113.9"))).status_code == 401
        assert_error(
            await login(server, "ann", "password-1", via("203.0.113.9")),
            429,
            "TOO_MANY_LOGIN_ATTEMPTS",
        )
        assert (await login(server, "bob", "password-1", via("203.0.113.10"))).status_code == 401

    other = make_settings(tmp_path / "b", f"{sqlite_url}-b", trusted_proxies="10.0.0.0/8")
    async with live_server(other) as server:  # the peer (127.0.0.1) is not trusted here
        await server.client.post(
            "/api/auth/register",
            json={"username": "ann", "password": "password-1"},
            headers=via("203.0.113.9"),
        )
        assert [e["ip"] for e in await activities(server, "register")] == ["127.0.0.1"]


# -- password hashing and registrations -------------------------------------------------


async def test_registration_flood_is_refused_quickly_and_others_are_served(
    tmp_path: Path, sqlite_url: str
) -> None:
    settings = make_settings(
        tmp_path,
        sqlite_url,
        bcrypt_rounds=10,
        password_hash_concurrency=1,
        password_hash_queue=2,
        register_max_per_address=0,  # the gate alone, here
    )
    async with live_server(settings) as server:
        headers = await server.user("reader")
        outcomes: list[int] = []
        me: list[int] = []

        async def register(i: int) -> None:
            response = await server.client.post(
                "/api/auth/register", json={"username": f"flood{i}", "password": "password-1"}
            )
            if response.status_code == 503:
                assert_error(response, 503, "SERVER_BUSY")
                assert response.headers["Retry-After"] == "1"
            outcomes.append(response.status_code)

        async def read_me() -> None:
            for _ in range(5):
                me.append((await server.client.get("/api/auth/me", headers=headers)).status_code)

        async with trio.open_nursery() as nursery:
            for i in range(40):
                nursery.start_soon(register, i)
            nursery.start_soon(read_me)
        counts = Counter(outcomes)
        assert set(counts) == {201, 503} and counts[201] + counts[503] == 40, counts
        assert me == [200] * 5


async def test_registrations_per_address_are_limited(tmp_path: Path, sqlite_url: str) -> None:
    settings = make_settings(tmp_path, sqlite_url, register_max_per_address=3, **PROXIED)
    async with live_server(settings) as server:
        for i in range(3):
            await server.register(f"user{i}")
        refused = await server.client.post(
            "/api/auth/register", json={"username": "user3", "password": "password-1"}
        )
        assert_error(refused, 429, "TOO_MANY_REGISTRATIONS")
        assert int(refused.headers["Retry-After"]) >= 1
        elsewhere = await server.client.post(
            "/api/auth/register",
            json={"username": "user3", "password": "password-1"},
            headers=via("203.0.113.9"),
        )
        assert elsewhere.status_code == 201, elsewhere.text


# -- API rate limits --------------------------------------------------------------------


async def test_api_rate_limits_per_user(tmp_path: Path, sqlite_url: str) -> None:
    settings = make_settings(
        tmp_path, sqlite_url, rate_limit_create_per_user=2, rate_limit_read_per_user=3
    )
    async with live_server(settings) as server:
        alice, bob = await server.user("alice"), await server.user("bob")
        for _ in range(3):
            assert (await server.client.get("/api/video/tasks", headers=alice)).status_code == 200
        limited = await server.client.get("/api/video/tasks", headers=alice)
        body = assert_error(limited, 429, "RATE_LIMITED")
        assert body["error"]["details"] == {"scope": "user", "kind": "read"}
        # Real time: a range; exact waits in tests/unit/test_limits.py (rate limiter).
        assert 1 <= int(limited.headers["Retry-After"]) <= 20
        assert (await server.client.get("/api/video/tasks", headers=bob)).status_code == 200

        for _ in range(2):
            created = await server.client.post(
                "/api/video/tasks", json={"prompt": "a fox"}, headers=alice
            )
            assert created.status_code == 201, created.text
        third = await server.client.post(
            "/api/video/tasks", json={"prompt": "a fox"}, headers=alice
        )
        assert_error(third, 429, "RATE_LIMITED")
        assert 1 <= int(third.headers["Retry-After"]) <= 30
