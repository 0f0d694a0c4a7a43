"""Odd and hostile input gets an error envelope (never a 500), on both databases; and no
client can steer the links other users receive."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
import trio
from trio_websocket import ConnectionClosed, open_websocket_url

from sora_actors.settings import Settings
from sora_actors.storage.tables import users
from tests.acceptance.test_content import FAST, completed
from tests.conftest import make_settings
from tests.harness import LiveServer, assert_error
from tests.wsclient import Session, ws_url


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(tmp_path, database_url, **FAST)


async def test_nul_characters_are_refused(server: LiveServer) -> None:
    headers = await server.user("nully")
    client = server.client
    assert_error(
        await client.post("/api/video/tasks", json={"prompt": "a\u0000b"}, headers=headers),
        400,
        "VALIDATION_ERROR",
    )
    assert_error(
        await client.post("/api/auth/login", json={"username": "a\u0000", "password": "xxxxxx"}),
        400,
        "VALIDATION_ERROR",
    )
    assert_error(
        await client.get("/api/video/tasks/a%00b", headers=headers), 400, "INVALID_CHARACTER"
    )
    cursor = base64.urlsafe_b64encode(b"1:a\x00b").decode()
    assert_error(
        await client.get(f"/api/video/tasks?cursor={cursor}", headers=headers),
        400,
        "INVALID_CURSOR",
    )


async def test_absurd_numbers_are_refused(server: LiveServer) -> None:
    headers = await server.user("numbers")
    for raw in (b"9" * 30 + b":x", b"-" + b"9" * 20 + b":x"):
        cursor = base64.urlsafe_b64encode(raw).decode()
        assert_error(
            await server.client.get(f"/api/video/tasks?cursor={cursor}", headers=headers),
            400,
            "INVALID_CURSOR",
        )
    task = await completed(server, headers, "numbers")
    url = task["videoUrl"]
    assert url.startswith("http://127.0.0.1:")  # REST: the caller's own origin
    huge = await server.client.get(url, headers={"Range": "bytes=0-" + "9" * 5000})
    assert huge.status_code in (200, 416), huge.status_code  # ignored or refused, never 500
    odd_expiry = await server.client.get("/files/x/video?exp=%C2%B2&sig=a")
    assert_error(odd_expiry, 403, "CONTENT_URL_INVALID")


async def test_a_host_header_cannot_poison_links_sent_to_others(server: LiveServer) -> None:
    headers = await server.user("victim")
    task = await completed(server, headers, "poison")
    # An anonymous request with a forged Host header...
    await server.client.get("/health", headers={"Host": "evil.example:666"})
    token = headers["Authorization"].split()[1]
    ws_url = server.base_url.replace("http://", "ws://") + "/ws"
    messages: list[dict[str, Any]] = []
    async with open_websocket_url(ws_url) as ws:
        for kind, payload in (("auth", {"token": token}), ("subscribe_task", task)):
            body = {"type": kind, "id": kind, "payload": payload}
            await ws.send_message(json.dumps(body))
        with trio.fail_after(10):
            while not any(m["type"] == "taskStatus" for m in messages):
                messages.append(json.loads(await ws.get_message()))
    snapshot = next(m for m in messages if m["type"] == "taskStatus")["payload"]
    # ...does not reach the links another user's WebSocket gets.
    assert "evil.example" not in json.dumps(snapshot)
    assert snapshot["videoUrl"].startswith(("/files/", "http://127.0.0.1:"))


# -- JSON that parsers choke on ------------------------------------------------------


def nested(depth: int) -> str:
    """An array nested ``depth`` levels deep, inside a valid create/login body."""
    fields = '"prompt": "deep", "username": "deep", "password": "password-1"'
    return "{" + fields + ', "x": ' + "[" * depth + "]" * depth + "}"


def send_json(server: LiveServer, path: str, text: str, headers: dict[str, str]) -> Any:
    return server.client.post(
        path, content=text.encode(), headers={**headers, "Content-Type": "application/json"}
    )


async def test_deeply_nested_json_is_refused_before_parsing(server: LiveServer) -> None:
    headers = await server.user("nester")
    limit = server.services.settings.max_json_depth
    for path in ("/api/video/tasks", "/api/auth/login", "/api/auth/register"):
        for depth in (limit, 1_000, 100_000):  # + 1 for the body object itself
            response = await send_json(server, path, nested(depth), headers)
            body = assert_error(response, 400, "JSON_TOO_DEEP")
            assert str(limit) in body["message"]
    # One level less is accepted (the unknown field is ignored).
    created = await send_json(server, "/api/video/tasks", nested(limit - 1), headers)
    assert created.status_code == 201, created.text
    # WebSocket messages go through the same reader; the connection stays usable.
    token = headers["Authorization"].split()[1]
    async with open_websocket_url(ws_url(server.base_url)) as connection:
        session = Session(connection)
        await session.recv()  # connected
        for depth in (limit, 5_000):
            await connection.send_message('{"type": "ping", "x": ' + nested(depth) + "}")
            error = await session.recv()
            assert error["type"] == "error", error
            assert error["payload"]["code"] == "JSON_TOO_DEEP"
        await connection.send_message('{"type": "auth", "type": "ping"}')
        duplicate = await session.recv()
        assert duplicate["payload"]["code"] == "DUPLICATE_KEY"
        assert (await session.auth(token))["type"] == "authSuccess"


async def test_duplicate_keys_nan_and_non_integer_seconds_are_refused(server: LiveServer) -> None:
    headers = await server.user("strict")
    create = "/api/video/tasks"
    twice = await send_json(server, create, '{"prompt": "a", "prompt": "b", "x": 1}', headers)
    body = assert_error(twice, 400, "DUPLICATE_KEY")
    assert "'prompt'" in body["message"]
    assert body["error"]["details"] == [{"field": "prompt", "message": "given more than once"}]
    login = '{"username": "strict", "password": "wrong-one", "password": "password-1"}'
    assert_error(await send_json(server, "/api/auth/login", login, {}), 400, "DUPLICATE_KEY")
    # Half a surrogate pair cannot be stored (the email reached the database: a 500).
    lone = '{"username": "surrogate", "password": "password-1", "email": "a\\ud800@b.cd"}'
    assert_error(await send_json(server, "/api/auth/register", lone, {}), 400, "INVALID_JSON")
    for constant in ("NaN", "Infinity", "-Infinity", "1e999"):
        text = '{"prompt": "a", "duration": ' + constant + "}"
        assert_error(await send_json(server, create, text, headers), 400, "INVALID_JSON")
    # Seconds are JSON integers: "10", 10.0 and true are refused, naming the field.
    for field in ("duration", "seconds"):
        for value in ("10", 10.0, True):
            response = await server.client.post(
                create, json={"prompt": "a", field: value}, headers=headers
            )
            error = assert_error(response, 400, "VALIDATION_ERROR")
            fields = [item["field"] for item in error["error"]["details"]]
            assert field in fields, error
            assert "integer" in error["message"]
    form = {"prompt": "a", "seconds": "10.0"}  # a form field is text; still not 10.0
    multipart = {"note": ("note.txt", b"multipart/form-data, not urlencoded")}
    response = await server.client.post(create, data=form, files=multipart, headers=headers)
    error = assert_error(response, 400, "VALIDATION_ERROR")
    assert error["error"]["details"][0]["field"] == "duration"
    ok = await server.client.post(create, json={"prompt": "a", "seconds": 10}, headers=headers)
    assert ok.status_code == 201 and ok.json()["data"]["duration"] == 10
    # Every bad field is named, not only the first.
    everything = await server.client.post(
        create,
        json={"prompt": " ", "model": "nope", "size": "1x1", "duration": "4"},
        headers=headers,
    )
    details = assert_error(everything, 400, "VALIDATION_ERROR")["error"]["details"]
    assert {item["field"] for item in details} == {"prompt", "model", "size", "duration"}
    listing = await server.client.get(
        "/api/video/tasks?page=0&pageSize=1000&status=nope&order=up", headers=headers
    )
    details = assert_error(listing, 400, "VALIDATION_ERROR")["error"]["details"]
    assert [item["field"] for item in details] == ["page", "pageSize", "status", "order"]
    register = await server.client.post(
        "/api/auth/register", json={"username": "x\n", "email": "nope", "password": "short"}
    )
    details = assert_error(register, 400, "VALIDATION_ERROR")["error"]["details"]
    assert {item["field"] for item in details} == {"username", "email", "password"}
    nul = {"username": "nul\u0000", "password": "pass\u0000word", "email": "a@b\u0000.cd"}
    register = await server.client.post("/api/auth/register", json=nul)
    details = assert_error(register, 400, "VALIDATION_ERROR")["error"]["details"]
    assert {item["field"] for item in details} == {"username", "email", "password"}


# -- usernames ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "username",
    [
        "alice\n",  # `$` matched before a trailing newline
        "alice\r\n",
        "\nalice",
        "ali\u200bce",  # zero-width space
        "\u202ealice",  # right-to-left override
        "ali\u00adce",  # soft hyphen
        "\u0430lice",  # Cyrillic a
        "al\u0131ce",  # dotless i
        "alice\u0007",
        "ali ce",
    ],
)
async def test_invisible_and_look_alike_usernames_are_refused(
    server: LiveServer, username: str
) -> None:
    await server.register("alice")
    response = await server.client.post(
        "/api/auth/register", json={"username": username, "password": "password-1"}
    )
    error = assert_error(response, 400, "VALIDATION_ERROR")
    assert error["error"]["details"][0]["field"] == "username"
    assert "ASCII" in error["message"]
    login = await server.client.post(
        "/api/auth/login", json={"username": username, "password": "password-1"}
    )
    assert_error(login, 400, "VALIDATION_ERROR")


async def test_usernames_are_nfkc_normalised_at_registration_and_login(
    server: LiveServer,
) -> None:
    full_width = "\uff42\uff4f\uff42"  # "bob" in full-width letters
    created = await server.register(full_width)
    assert created["username"] == "bob"
    again = await server.client.post(
        "/api/auth/register", json={"username": "BOB", "password": "password-1"}
    )
    assert_error(again, 409, "USERNAME_TAKEN")
    for name in (full_width, "bob", "Bob"):
        assert await server.login(name)


# -- tokens that outlive their account ----------------------------------------------


async def _change_user(server: LiveServer, user_id: str, *, delete: bool = False) -> None:
    """What an administrator does in the database: disable the account, or delete it."""

    async def change(conn: Any) -> None:
        if delete:  # its sessions first (they name the account)
            await conn.execute("DELETE FROM sessions WHERE user_id = :id", {"id": user_id})
            await conn.execute(users.delete().where(users.c.id == user_id))
        else:
            await conn.execute(users.update().where(users.c.id == user_id).values(is_active=False))

    await server.services.storage.database.run(change)
    # A change made by hand reaches the access cache within SORA_SESSION_CACHE_SECONDS (1 s;
    # tested in tests/integration/test_access.py); the server's own writers drop the entry
    # at once, as here.
    server.services.runtime.access.forget_user(user_id)


async def assert_ws_refuses(server: LiveServer, token: str, code: str) -> None:
    """authFailed with ``code``, then a close with 4401; by message and by query token."""
    async with open_websocket_url(ws_url(server.base_url)) as connection:
        session = Session(connection)
        await session.recv()  # connected
        refused = await session.auth(token)
        assert refused["type"] == "authFailed" and refused["payload"]["code"] == code
        with pytest.raises(ConnectionClosed) as closed:
            await session.recv()
        assert closed.value.reason.code == 4401
    async with open_websocket_url(ws_url(server.base_url, f"token={token}")) as connection:
        session = Session(connection)
        assert (await session.recv())["type"] == "connected"
        refused = await session.recv()
        assert refused["type"] == "authFailed" and refused["payload"]["code"] == code
        with pytest.raises(ConnectionClosed) as closed:
            await session.recv()
        assert closed.value.reason.code == 4401


async def test_tokens_of_disabled_or_deleted_accounts_are_401_everywhere(
    server: LiveServer,
) -> None:
    client = server.client
    disabled = await server.user("soon-disabled")
    task = (await client.post("/api/video/tasks", json={"prompt": "a"}, headers=disabled)).json()
    disabled_id = (await client.get("/api/auth/me", headers=disabled)).json()["data"]["id"]
    await _change_user(server, disabled_id)
    video = f"/api/video/tasks/{task['data']['videoId']}"
    for method, path in (
        ("POST", "/api/video/tasks"),
        ("GET", "/api/video/tasks"),
        ("GET", video),
        ("POST", f"{video}/cancel"),
        ("GET", f"{video}/content"),
        ("GET", "/api/video/stats"),
        ("GET", "/api/auth/me"),
    ):
        response = await client.request(method, path, json={"prompt": "a"}, headers=disabled)
        assert_error(response, 401, "ACCOUNT_DISABLED")
    await assert_ws_refuses(server, disabled["Authorization"].split()[1], "ACCOUNT_DISABLED")

    deleted = await server.user("soon-deleted")
    me = (await client.get("/api/auth/me", headers=deleted)).json()["data"]
    await _change_user(server, me["id"], delete=True)
    for method, path in (
        ("POST", "/api/video/tasks"),
        ("GET", "/api/video/tasks"),
        ("GET", "/api/video/stats"),
    ):
        response = await client.request(method, path, json={"prompt": "a"}, headers=deleted)
        assert_error(response, 401, "INVALID_TOKEN")
    await assert_ws_refuses(server, deleted["Authorization"].split()[1], "INVALID_TOKEN")
    # The create refused after the change created nothing.
    assert sum((await server.services.storage.tasks.stats(disabled_id)).values()) == 1
