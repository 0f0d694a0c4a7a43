"""A small WebSocket client for tests (trio-websocket), like the old frontend's.

`Session` is one connection: send envelopes, read them. `ResilientClient` keeps a
subscription alive the way the old frontend does: on a lost connection it reconnects with
exponential backoff (at most ``max_tries`` in a row), authenticates again and subscribes
again, and records every message it ever received, so a test can check that nothing was
lost across reconnects.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import trio
from trio_websocket import (
    ConnectionClosed,
    HandshakeError,
    WebSocketConnection,
    open_websocket_url,
)

Message = dict[str, Any]


def ws_url(base_url: str, query: str = "") -> str:
    """``http://host:port`` -> ``ws://host:port/ws[?query]``."""
    url = base_url.replace("http://", "ws://", 1).rstrip("/") + "/ws"
    return f"{url}?{query}" if query else url


class Session:
    """One open connection: JSON envelopes in and out."""

    def __init__(self, connection: WebSocketConnection) -> None:
        self.connection = connection
        self.received: list[Message] = []
        self._next_id = 0

    async def send(self, kind: str, payload: dict[str, Any] | None = None) -> str:
        """Send ``{type, id, timestamp, payload}``; return the id (replies echo it)."""
        self._next_id += 1
        message_id = f"m{self._next_id}"
        envelope = {
            "type": kind,
            "id": message_id,
            "timestamp": trio.current_time(),
            "payload": payload or {},
        }
        await self.connection.send_message(json.dumps(envelope))
        return message_id

    async def recv(self, timeout: float = 10.0) -> Message:
        with trio.fail_after(timeout):
            raw = await self.connection.get_message()
        assert isinstance(raw, str), "the server sends text frames only"
        message: Message = json.loads(raw)
        self.received.append(message)
        return message

    async def recv_until(
        self, done: Callable[[Message], bool], timeout: float = 30.0, skip_heartbeats: bool = True
    ) -> list[Message]:
        """Messages up to and including the first for which ``done`` is true."""
        seen: list[Message] = []
        with trio.fail_after(timeout):
            while True:
                message = await self.recv(timeout=math.inf)
                if skip_heartbeats and message["type"] == "heartbeat":
                    continue
                seen.append(message)
                if done(message):
                    return seen

    async def recv_type(self, kind: str, timeout: float = 30.0) -> Message:
        return (await self.recv_until(lambda m: m["type"] == kind, timeout))[-1]

    async def auth(self, token: str) -> Message:
        message_id = await self.send("auth", {"token": token})
        reply = await self.recv_until(lambda m: m.get("id") == message_id)
        return reply[-1]

    async def subscribe(self, video_id: str) -> tuple[Message, Message]:
        """``subscribeSuccess`` and the ``taskStatus`` snapshot right behind it."""
        message_id = await self.send("subscribe_task", {"videoId": video_id})
        ack = (await self.recv_until(lambda m: m.get("id") == message_id))[-1]
        assert ack["type"] == "subscribeSuccess", ack
        snapshot = await self.recv(timeout=10)
        assert snapshot["type"] == "taskStatus", snapshot
        return ack, snapshot


class ResilientClient:
    """Follows tasks across lost connections: reconnect with backoff, re-auth, resubscribe."""

    def __init__(
        self,
        base_url: str,
        token: str,
        video_ids: list[str],
        *,
        max_tries: int = 10,
        base_delay: float = 0.05,
        max_delay: float = 2.0,
    ) -> None:
        self.url = ws_url(base_url)
        self.token = token
        self.video_ids = video_ids
        self.max_tries = max_tries
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.messages: list[Message] = []  # every message of every connection, in order
        self.connections = 0
        self._session: Session | None = None
        self._changed = trio.Event()

    async def run(self) -> None:
        """Keep a connection until cancelled; give up after ``max_tries`` failures in a row."""
        failures = 0
        while True:
            try:
                async with open_websocket_url(self.url) as connection:
                    session = Session(connection)
                    self._session = session
                    self.connections += 1
                    failures = 0
                    await self._follow(session)
            except (ConnectionClosed, HandshakeError, OSError, trio.BrokenResourceError):
                pass
            finally:
                self._session = None
            failures += 1
            if failures > self.max_tries:
                raise ConnectionError(f"gave up after {self.max_tries} reconnects")
            await trio.sleep(min(self.max_delay, self.base_delay * 2 ** (failures - 1)))

    async def _follow(self, session: Session) -> None:
        connected = await session.recv()
        assert connected["type"] == "connected", connected
        await session.send("auth", {"token": self.token})
        for video_id in self.video_ids:
            await session.send("subscribe_task", {"videoId": video_id})
        while True:
            message = await session.recv(timeout=math.inf)
            message["_connection"] = self.connections
            self.messages.append(message)
            self._changed.set()
            self._changed = trio.Event()

    async def drop(self) -> None:
        """Cut the current connection abruptly (no close handshake), like a network failure."""
        session = self._session
        assert session is not None, "not connected"
        await session.connection._stream.aclose()

    async def wait_for(self, done: Callable[[Message], bool], timeout: float = 30.0) -> Message:
        """The first recorded message (old or new) for which ``done`` is true."""
        with trio.fail_after(timeout):
            checked = 0
            while True:
                for message in self.messages[checked:]:
                    if done(message):
                        return message
                checked = len(self.messages)
                await self._changed.wait()
