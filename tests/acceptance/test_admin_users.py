"""Admins, sessions and the access cache over real HTTP and WebSocket, on SQLite and
PostgreSQL: the admin users API, the 401/403 gate, bans, logout, and changes reaching every
instance (and the command line's changes reaching running servers)."""

from __future__ import annotations

import io
import json
import logging
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import pytest
import trio
from trio_websocket import ConnectionClosed, open_websocket_url

from sora_actors.logs import configure
from sora_actors.settings import Settings
from tests.acceptance.licensing import generate
from tests.conftest import TEST_SECRET, make_settings
from tests.harness import LiveServer, assert_error, live_server
from tests.wsclient import Session, ws_url

ADMIN, ADMIN_PASSWORD = "root", "admin-password-1"
Headers = dict[str, str]


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(
        tmp_path, database_url, admin_username=ADMIN, admin_password=ADMIN_PASSWORD
    )


def bearer(token: str) -> Headers:
    return {"Authorization": f"Bearer {token}"}


async def admin_headers(server: LiveServer) -> Headers:
    return bearer(await server.login(ADMIN, ADMIN_PASSWORD))


async def user_id_of(server: LiveServer, headers: Headers) -> str:
    me = await server.client.get("/api/auth/me", headers=headers)
    assert me.status_code == 200, me.text
    user_id: str = me.json()["data"]["id"]
    return user_id


@asynccontextmanager
async def ws_session(server: LiveServer, token: str) -> AsyncIterator[Session]:
    """An authenticated /ws connection following all of its user's tasks."""
    async with open_websocket_url(ws_url(server.base_url)) as connection:
        session = Session(connection)
        assert (await session.recv())["type"] == "connected"
        assert (await session.auth(token))["type"] == "authSuccess"
        ack = await session.send("subscribe_tasks")
        await session.recv_until(lambda m: m.get("id") == ack)
        yield session


async def closed_with(session: Session, *, within: float = 1.0) -> tuple[dict[str, Any], int]:
    """The ``error`` the server sends last, and the close code after it."""
    last: dict[str, Any] = {}
    with trio.fail_after(within):
        try:
            while True:
                message = await session.recv(timeout=within)
                if message["type"] != "heartbeat":
                    last = message
        except ConnectionClosed as closed:
            assert closed.reason is not None
            return last, closed.reason.code
    raise AssertionError("unreachable")


async def eventually(check: Callable[[], Awaitable[bool]], *, within: float = 1.0) -> None:
    """Poll ``check`` until it holds; fail if it does not within ``within`` seconds."""
    with trio.fail_after(within):
        while not await check():
            await trio.sleep(0.02)


# -- roles, login, the first admin -------------------------------------------------------


async def test_first_admin_from_settings_is_created_once_and_never_overwritten(
    tmp_path: Path, database_url: str
) -> None:
    first = make_settings(
        tmp_path, database_url, admin_username=ADMIN, admin_password=ADMIN_PASSWORD
    )
    async with live_server(first) as server:
        login = await server.client.post(
            "/api/auth/login", json={"username": ADMIN, "password": ADMIN_PASSWORD}
        )
        assert login.json()["data"]["user"]["role"] == "ADMIN"
        headers = bearer(login.json()["data"]["token"])
        me = await server.client.get("/api/auth/me", headers=headers)
        assert me.json()["data"]["role"] == "ADMIN"
    again = make_settings(
        tmp_path, database_url, admin_username=ADMIN, admin_password="another-password"
    )
    async with live_server(again) as server:
        await server.login(ADMIN, ADMIN_PASSWORD)  # the first password still holds
        wrong = await server.client.post(
            "/api/auth/login", json={"username": ADMIN, "password": "another-password"}
        )
        assert_error(wrong, 401, "INVALID_CREDENTIALS")
        listed = await server.client.get(
            "/api/admin/users", params={"role": "ADMIN"}, headers=await admin_headers(server)
        )
        assert listed.json()["data"]["total"] == 1


ADMIN_ROUTES: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", "/api/admin/users", None),
    ("GET", "/api/admin/users/{id}", None),
    ("POST", "/api/admin/users", {"username": "made", "password": "password-9"}),
    ("PUT", "/api/admin/users/{id}", {"role": "ADMIN"}),
    ("DELETE", "/api/admin/users/{id}", None),
    ("POST", "/api/admin/users/{id}/ban", {"banned": True}),
]


async def test_every_admin_route_is_401_without_token_and_403_for_a_user(
    server: LiveServer,
) -> None:
    headers = await server.user("plain")
    target = await user_id_of(server, headers)
    for method, path, body in ADMIN_ROUTES:
        url = path.format(id=target)
        anonymous = await server.client.request(method, url, json=body)
        assert_error(anonymous, 401, "AUTH_REQUIRED")
        as_user = await server.client.request(method, url, json=body, headers=headers)
        assert_error(as_user, 403, "FORBIDDEN")
    # Nothing happened to anyone.
    me = await server.client.get("/api/auth/me", headers=headers)
    assert me.json()["data"]["role"] == "USER" and me.json()["data"]["isActive"] is True


# -- the admin users API -------------------------------------------------------------------


async def test_admin_users_api_shapes_filters_and_detail(server: LiveServer) -> None:
    admin = await admin_headers(server)
    created = await server.client.post(
        "/api/admin/users",
        json={"username": "maria", "email": "maria@example.com", "password": "password-1"},
        headers=admin,
    )
    assert created.status_code == 201, created.text
    maria = created.json()["data"]
    assert set(maria) == {
        "id",
        "username",
        "email",
        "role",
        "isActive",
        "banned",
        "createdAt",
        "lastLogin",
        "taskCount",
    }
    assert maria["role"] == "USER" and maria["isActive"] is True and maria["taskCount"] == 0
    boss = await server.client.post(
        "/api/admin/users",
        json={"username": "boss", "password": "password-1", "role": "ADMIN"},
        headers=admin,
    )
    assert boss.json()["data"]["role"] == "ADMIN"
    taken = await server.client.post(
        "/api/admin/users", json={"username": "MARIA", "password": "password-1"}, headers=admin
    )
    assert_error(taken, 409, "USERNAME_TAKEN")

    maria_headers = bearer(await server.login("maria"))
    task = await server.client.post(
        "/api/video/tasks", json={"prompt": "a red kite"}, headers=maria_headers
    )
    assert task.status_code == 201, task.text

    listed = await server.client.get("/api/admin/users", headers=admin)
    page = listed.json()["data"]
    assert set(page) == {"items", "total", "page", "pageSize"}
    assert page["total"] == 3 and page["page"] == 1 and page["pageSize"] == 20
    by_name = {item["username"]: item for item in page["items"]}
    assert by_name["maria"]["taskCount"] == 1 and by_name["maria"]["lastLogin"] is not None
    assert by_name[ADMIN]["role"] == "ADMIN"

    async def names(**params: Any) -> list[str]:
        response = await server.client.get("/api/admin/users", params=params, headers=admin)
        assert response.status_code == 200, response.text
        return sorted(item["username"] for item in response.json()["data"]["items"])

    assert await names(q="MAR") == ["maria"]
    assert await names(q="example.com") == ["maria"]
    assert await names(q="%") == []  # LIKE wildcards are literal
    assert await names(role="admin") == ["boss", ADMIN]
    assert await names(isActive="false") == []
    assert len(await names(page=2, pageSize=2)) == 1
    bad = await server.client.get("/api/admin/users", params={"role": "GOD"}, headers=admin)
    assert_error(bad, 400, "VALIDATION_ERROR")

    detail = await server.client.get(f"/api/admin/users/{maria['id']}", headers=admin)
    data = detail.json()["data"]
    assert data["license"] is None
    assert sum(data["tasksByStatus"].values()) == 1 and data["taskCount"] == 1
    actions = [entry["action"] for entry in data["recentActivity"]]
    assert actions[:2] == ["generate_video", "login"], actions
    assert set(data["recentActivity"][0]) == {
        "id",
        "userId",
        "action",
        "details",
        "ip",
        "userAgent",
        "createdAt",
    }
    missing = await server.client.get("/api/admin/users/nobody", headers=admin)
    assert_error(missing, 404, "USER_NOT_FOUND")


async def test_update_email_role_and_password_reset(server: LiveServer) -> None:
    admin = await admin_headers(server)
    await server.register("olga", email="olga@example.com")
    await server.register("pete", email="pete@example.com")
    olga_token = await server.login("olga")
    olga = await user_id_of(server, bearer(olga_token))

    clash = await server.client.put(
        f"/api/admin/users/{olga}", json={"email": "PETE@example.com"}, headers=admin
    )
    assert_error(clash, 409, "EMAIL_TAKEN")
    changed = await server.client.put(
        f"/api/admin/users/{olga}",
        json={"email": "olga@new.example", "role": "ADMIN"},
        headers=admin,
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["data"]["email"] == "olga@new.example"
    assert changed.json()["data"]["role"] == "ADMIN"
    # The new role counts at once, with the token she already has.
    as_admin = await server.client.get("/api/admin/users", headers=bearer(olga_token))
    assert as_admin.status_code == 200

    reset = await server.client.put(
        f"/api/admin/users/{olga}", json={"password": "brand-new-pass"}, headers=admin
    )
    assert reset.status_code == 200
    assert "passwordHash" not in reset.text and "$2b$" not in reset.text
    refused = await server.client.get("/api/auth/me", headers=bearer(olga_token))
    assert_error(refused, 401, "SESSION_REVOKED")
    await server.login("olga", "brand-new-pass")
    missing = await server.client.put("/api/admin/users/nobody", json={}, headers=admin)
    assert_error(missing, 404, "USER_NOT_FOUND")


async def test_the_last_active_admin_cannot_remove_themself(server: LiveServer) -> None:
    admin = await admin_headers(server)
    me = await user_id_of(server, admin)
    for method, path, body in [
        ("PUT", f"/api/admin/users/{me}", {"role": "USER"}),
        ("PUT", f"/api/admin/users/{me}", {"isActive": False}),
        ("DELETE", f"/api/admin/users/{me}", None),
        ("POST", f"/api/admin/users/{me}/ban", {"banned": True}),
    ]:
        response = await server.client.request(method, path, json=body, headers=admin)
        assert_error(response, 409, "LAST_ADMIN")
    still = await server.client.get("/api/admin/users", headers=admin)
    assert still.status_code == 200
    # With a second admin, the first may step down.
    await server.client.post(
        "/api/admin/users",
        json={"username": "deputy", "password": "password-1", "role": "ADMIN"},
        headers=admin,
    )
    down = await server.client.put(f"/api/admin/users/{me}", json={"role": "USER"}, headers=admin)
    assert down.status_code == 200 and down.json()["data"]["role"] == "USER"
    assert_error(await server.client.get("/api/admin/users", headers=admin), 403, "FORBIDDEN")


async def test_delete_deactivates_and_keeps_tasks_visible_to_admins(server: LiveServer) -> None:
    admin = await admin_headers(server)
    headers = await server.user("quinn")
    quinn = await user_id_of(server, headers)
    task = await server.client.post("/api/video/tasks", json={"prompt": "a boat"}, headers=headers)
    assert task.status_code == 201
    deleted = await server.client.delete(f"/api/admin/users/{quinn}", headers=admin)
    assert deleted.status_code == 200
    assert deleted.json()["data"]["isActive"] is False
    assert deleted.json()["data"]["taskCount"] == 1
    assert_error(await server.client.get("/api/auth/me", headers=headers), 401, "ACCOUNT_DISABLED")
    login = await server.client.post(
        "/api/auth/login", json={"username": "quinn", "password": "password-1"}
    )
    assert_error(login, 403, "ACCOUNT_DISABLED")
    detail = await server.client.get(f"/api/admin/users/{quinn}", headers=admin)
    assert detail.json()["data"]["taskCount"] == 1
    inactive = await server.client.get(
        "/api/admin/users", params={"isActive": "false"}, headers=admin
    )
    assert [item["username"] for item in inactive.json()["data"]["items"]] == ["quinn"]


async def test_admin_actions_are_logged_with_the_admins_id(server: LiveServer) -> None:
    admin = await admin_headers(server)
    admin_id = await user_id_of(server, admin)
    made = await server.client.post(
        "/api/admin/users", json={"username": "rita", "password": "password-1"}, headers=admin
    )
    rita = made.json()["data"]["id"]
    await server.client.put(f"/api/admin/users/{rita}", json={"role": "ADMIN"}, headers=admin)
    await server.client.post(f"/api/admin/users/{rita}/ban", json={"banned": True}, headers=admin)
    await server.client.delete(f"/api/admin/users/{rita}", headers=admin)
    entries = await server.services.storage.accounts.activities(admin_id)
    logged = {
        e["action"]: details
        for e in entries
        if e["action"] != "login" and "by" not in (details := json.loads(e["details"]))
    }
    assert set(logged) == {
        "admin_user_create",
        "admin_user_update",
        "admin_user_ban",
        "admin_user_delete",
    }
    assert logged["admin_user_update"] == {"targetUserId": rita, "fields": ["role"]}
    assert logged["admin_user_ban"] == {"targetUserId": rita, "banned": True}
    assert logged["admin_user_create"] == {"username": "rita", "role": "USER"}


# -- bans, logout and open WebSockets ----------------------------------------------------------


async def test_a_ban_closes_the_open_websocket_and_refuses_the_next_call(
    server: LiveServer,
) -> None:
    admin = await admin_headers(server)
    token = await server.login(*await _registered(server, "sam"))
    sam = await user_id_of(server, bearer(token))
    async with ws_session(server, token) as session:
        banned = await server.client.post(
            f"/api/admin/users/{sam}/ban", json={"banned": True}, headers=admin
        )
        assert banned.status_code == 200 and banned.json()["data"]["banned"] is True
        last, code = await closed_with(session)
    assert last["type"] == "error" and last["payload"]["code"] == "ACCOUNT_BANNED"
    assert code == 4401
    assert_error(
        await server.client.get("/api/auth/me", headers=bearer(token)), 401, "ACCOUNT_BANNED"
    )
    login = await server.client.post(
        "/api/auth/login", json={"username": "sam", "password": "password-1"}
    )
    assert_error(login, 403, "ACCOUNT_BANNED")
    # The token's sessions were revoked: lifting the ban needs a new login.
    await server.client.post(f"/api/admin/users/{sam}/ban", json={"banned": False}, headers=admin)
    assert_error(
        await server.client.get("/api/auth/me", headers=bearer(token)), 401, "SESSION_REVOKED"
    )
    fresh = await server.login("sam")
    assert (await server.client.get("/api/auth/me", headers=bearer(fresh))).status_code == 200


async def _registered(server: LiveServer, name: str) -> tuple[str, str]:
    await server.register(name)
    return name, "password-1"


async def test_logout_revokes_its_session_only_for_rest_and_websocket(
    server: LiveServer,
) -> None:
    await server.register("tina")
    first, second = await server.login("tina"), await server.login("tina")
    verify = await server.client.get("/api/auth/verify", headers=bearer(first))
    assert verify.status_code == 200
    assert verify.json()["data"]["valid"] is True
    assert verify.json()["data"]["user"]["username"] == "tina"
    assert verify.json()["data"]["user"]["role"] == "USER"
    async with ws_session(server, first) as doomed, ws_session(server, second) as kept:
        out = await server.client.post("/api/auth/logout", headers=bearer(first))
        assert out.status_code == 200 and out.json()["data"]["revoked"] is True
        last, code = await closed_with(doomed)
        assert last["payload"]["code"] == "SESSION_REVOKED" and code == 4401
        ping = await kept.send("ping")
        assert (await kept.recv_until(lambda m: m.get("id") == ping))[-1]["type"] == "pong"
    for path in ("/api/auth/verify", "/api/auth/me", "/api/video/tasks"):
        refused = await server.client.get(path, headers=bearer(first))
        assert_error(refused, 401, "SESSION_REVOKED")
    assert (await server.client.get("/api/auth/verify", headers=bearer(second))).status_code == 200
    # A revoked token cannot authenticate a new connection either.
    async with open_websocket_url(ws_url(server.base_url)) as connection:
        session = Session(connection)
        await session.recv()
        reply = await session.auth(first)
        assert reply["type"] == "authFailed" and reply["payload"]["code"] == "SESSION_REVOKED"
    user_id = await user_id_of(server, bearer(second))
    actions = [e["action"] for e in await server.services.storage.accounts.activities(user_id)]
    assert actions.count("logout") == 1


async def test_a_stale_cache_would_be_caught(server: LiveServer) -> None:
    """Warm the cache, change the account, and the very next call sees the change."""
    admin = await admin_headers(server)
    headers = await server.user("uma")
    uma = await user_id_of(server, headers)
    access = server.services.runtime.access
    reads = access.reads
    for _ in range(5):  # served from memory: no database read per request
        assert (await server.client.get("/api/auth/me", headers=headers)).status_code == 200
    assert access.reads == reads
    await server.client.put(f"/api/admin/users/{uma}", json={"role": "ADMIN"}, headers=admin)
    assert (await server.client.get("/api/admin/users", headers=headers)).status_code == 200
    await server.client.put(f"/api/admin/users/{uma}", json={"role": "USER"}, headers=admin)
    assert_error(await server.client.get("/api/admin/users", headers=headers), 403, "FORBIDDEN")
    await server.client.put(f"/api/admin/users/{uma}", json={"isActive": False}, headers=admin)
    assert_error(await server.client.get("/api/auth/me", headers=headers), 401, "ACCOUNT_DISABLED")


@contextmanager
def service_log(level: int) -> Iterator[io.StringIO]:
    """The service's own log output (its handler, filters and format), as text."""
    root = logging.getLogger()
    handlers, old_level = list(root.handlers), root.level
    stream = io.StringIO()
    configure(production=True, level=level, secrets=[TEST_SECRET], stream=stream)
    try:
        yield stream
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(old_level)


async def test_no_password_hash_or_secret_in_any_answer_or_log(server: LiveServer) -> None:
    with service_log(logging.DEBUG) as stream:
        answers, stored = await _admin_session_with_secrets(server)
    secrets = (stored.password_hash, TEST_SECRET, "secret-pass-2", ADMIN_PASSWORD)
    logs = stream.getvalue()
    assert "admin_user" in logs or "/api/admin/users" in logs  # the log did capture them
    for text in [answer.text for answer in answers] + [logs, repr(stored)]:
        for secret in secrets:
            assert secret not in text
        assert "$2b$" not in text


async def _admin_session_with_secrets(server: LiveServer) -> tuple[list[Any], Any]:
    admin = await admin_headers(server)
    headers = await server.user("vera")
    vera = await user_id_of(server, headers)
    answers = [
        await server.client.get("/api/auth/me", headers=headers),
        await server.client.get("/api/auth/verify", headers=headers),
        await server.client.get("/api/admin/users", headers=admin),
        await server.client.get(f"/api/admin/users/{vera}", headers=admin),
        await server.client.put(
            f"/api/admin/users/{vera}", json={"password": "secret-pass-2"}, headers=admin
        ),
        await server.client.post(
            f"/api/admin/users/{vera}/ban", json={"banned": True}, headers=admin
        ),
        await server.client.post("/api/auth/logout", headers=admin),
    ]
    stored = await server.services.storage.accounts.by_id(vera)
    assert stored is not None
    return answers, stored


# -- several instances, and the command line ---------------------------------------------------


@pytest.mark.postgres
async def test_changes_on_one_instance_reach_another_within_a_second(
    tmp_path: Path, postgres_url: str
) -> None:
    """B keeps entries for an hour: only the notification can tell it of A's changes."""
    base = {"admin_username": ADMIN, "admin_password": ADMIN_PASSWORD}
    settings_a = make_settings(tmp_path / "a", postgres_url, instance_id="a", **base)
    settings_b = make_settings(
        tmp_path / "b", postgres_url, instance_id="b", session_cache_seconds=3600, **base
    )
    async with live_server(settings_a) as a, live_server(settings_b) as b:
        admin = await admin_headers(a)
        await a.register("walt")
        token = await b.login("walt")
        walt = await user_id_of(b, bearer(token))
        assert_error(
            await b.client.get("/api/admin/users", headers=bearer(token)), 403, "FORBIDDEN"
        )

        await a.client.put(f"/api/admin/users/{walt}", json={"role": "ADMIN"}, headers=admin)

        async def admin_on_b() -> bool:
            response = await b.client.get("/api/admin/users", headers=bearer(token))
            return response.status_code == 200

        await eventually(admin_on_b)
        await a.client.put(f"/api/admin/users/{walt}", json={"role": "USER"}, headers=admin)

        async def user_on_b() -> bool:
            response = await b.client.get("/api/admin/users", headers=bearer(token))
            return response.status_code == 403

        await eventually(user_on_b)
        async with ws_session(b, token) as session:
            await a.client.post(
                f"/api/admin/users/{walt}/ban", json={"banned": True}, headers=admin
            )
            last, code = await closed_with(session)
        assert last["payload"]["code"] == "ACCOUNT_BANNED" and code == 4401
        assert_error(
            await b.client.get("/api/auth/me", headers=bearer(token)), 401, "ACCOUNT_BANNED"
        )

        # A logout on B ends the session on A as well (A caches it too).
        await a.client.post(f"/api/admin/users/{walt}/ban", json={"banned": False}, headers=admin)
        again = await a.login("walt")
        assert (await a.client.get("/api/auth/me", headers=bearer(again))).status_code == 200
        async with ws_session(a, again) as on_a:
            assert (
                await b.client.post("/api/auth/logout", headers=bearer(again))
            ).status_code == 200
            last, code = await closed_with(on_a)
        assert last["payload"]["code"] == "SESSION_REVOKED" and code == 4401


async def run_cli(settings: Settings, *args: str) -> tuple[int, str]:
    env = {
        **os.environ,
        "SORA_DATABASE_URL": settings.resolved_database_url,
        "SORA_DATA_DIR": str(settings.data_dir),
        "SORA_BCRYPT_ROUNDS": "4",
    }
    result = await trio.run_process(
        [sys.executable, "-m", "sora_actors.cli", "users", *args],
        env=env,
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )
    return result.returncode, (result.stdout + result.stderr).decode()


async def test_the_command_line_reaches_a_running_server(tmp_path: Path, database_url: str) -> None:
    """SQLite: the server sees outside commits within its 1 s poll; PostgreSQL: NOTIFY.
    The server keeps entries for an hour, so only those paths can tell it."""
    settings = make_settings(tmp_path, database_url, session_cache_seconds=3600)
    async with live_server(settings) as server:
        code, out = await run_cli(
            settings, "create", "--admin", "--username", "xena", "--password", "password-1"
        )
        assert code == 0, out
        admin = bearer(await server.login("xena"))
        assert (await server.client.get("/api/admin/users", headers=admin)).status_code == 200
        code, out = await run_cli(settings, "list")
        assert code == 0 and "xena" in out and "ADMIN" in out, out
        assert "$2b$" not in out
        code, out = await run_cli(settings, "deactivate", "xena")
        assert code == 1 and "last active administrator" in out

        headers = await server.user("yuri")
        async with ws_session(server, headers["Authorization"].split()[1]) as session:
            code, out = await run_cli(settings, "set-role", "yuri", "admin")
            assert code == 0, out

            async def promoted() -> bool:
                response = await server.client.get("/api/admin/users", headers=headers)
                return response.status_code == 200

            await eventually(promoted, within=1.5)
            code, out = await run_cli(settings, "deactivate", "yuri")
            assert code == 0, out
            last, close = await closed_with(session, within=1.5)
        assert last["payload"]["code"] == "ACCOUNT_DISABLED" and close == 4401
        assert_error(
            await server.client.get("/api/auth/me", headers=headers), 401, "ACCOUNT_DISABLED"
        )
        code, out = await run_cli(settings, "set-role", "nobody", "ADMIN")
        assert code == 1 and "no user" in out


async def test_user_detail_shows_the_licence_without_its_key(server: LiveServer) -> None:
    admin = await admin_headers(server)
    made = await generate(server, admin, "PRO")
    key = made["licenseKey"]
    headers = await server.user("zoe")
    zoe = await user_id_of(server, headers)
    activated = await server.client.post(
        "/api/license/activate", json={"licenseKey": key}, headers=headers
    )
    assert activated.status_code == 200, activated.text
    detail = await server.client.get(f"/api/admin/users/{zoe}", headers=admin)
    licence = detail.json()["data"]["license"]
    assert licence["type"] == "PRO" and licence["userId"] == zoe
    assert licence["activatedAt"] is not None
    assert not any("key" in name.lower() or "hash" in name.lower() for name in licence)
    assert key not in detail.text and key.replace("-", "") not in detail.text
