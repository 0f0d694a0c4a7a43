"""Odd and hostile input gets an error envelope (never a 500), on both databases; and no
client can steer the links other users receive."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
import trio
from trio_websocket import open_websocket_url

from sora_actors.settings import Settings
from tests.acceptance.test_content import FAST, completed
from tests.conftest import make_settings
from tests.harness import LiveServer, assert_error


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
