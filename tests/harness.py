"""A real sora-actors server on an ephemeral port, and a client to talk to it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

import httpx2
import trio

from sora_actors.server import Running, run_server
from sora_actors.services import Services
from sora_actors.settings import Settings


@dataclass
class LiveServer:
    base_url: str
    client: httpx2.AsyncClient
    running: Running

    @property
    def services(self) -> Services:
        return self.running.services

    async def register(self, username: str, password: str = "password-1", **extra: Any) -> Any:
        response = await self.client.post(
            "/api/auth/register", json={"username": username, "password": password, **extra}
        )
        assert response.status_code == 201, response.text
        return response.json()["data"]

    async def login(self, username: str, password: str = "password-1") -> str:
        response = await self.client.post(
            "/api/auth/login", json={"username": username, "password": password}
        )
        assert response.status_code == 200, response.text
        token: str = response.json()["data"]["token"]
        return token

    async def user(self, username: str) -> dict[str, str]:
        """Register and log in; headers carrying the token."""
        await self.register(username)
        return {"Authorization": f"Bearer {await self.login(username)}"}


@asynccontextmanager
async def live_server(settings: Settings, *, port: int = 0) -> AsyncIterator[LiveServer]:
    """A real server; on ``port`` when its address must be known beforehand (0: any)."""
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        running: Running = await nursery.start(
            partial(run_server, settings, host="127.0.0.1", port=port, shutdown_trigger=stop.wait)
        )
        try:
            async with httpx2.AsyncClient(base_url=running.url, timeout=15) as client:
                yield LiveServer(running.url, client, running)
        finally:
            stop.set()


def assert_error(response: httpx2.Response, status: int, code: str) -> dict[str, Any]:
    """The contract's error envelope with this status and machine code."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert body["success"] is False
    assert body["error"]["code"] == code
    assert isinstance(body["message"], str) and body["message"]
    assert body["message"] == body["error"]["message"]
    assert "Traceback" not in response.text
    return body
