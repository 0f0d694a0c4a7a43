"""The guarded listener in virtual time: deadlines, the connection cap, shutdown, the guard.

A tiny ASGI app (no database, no threads) is served by `sora_actors.http.listener.serve` on a
real loopback socket while pytest-trio's `autojump_clock` drives time, so every deadline is
asserted exactly.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any

import pytest
import trio
import trio.testing
from hypercorn.config import Config

from sora_actors.http.listener import ConnectionLimits, Connections, serve

LIMITS = ConnectionLimits(
    max_connections=8, header_timeout=10.0, keep_alive=75.0, send_timeout=30.0
)
GRACE = 10.0


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """``/`` answers ok; ``/slow`` after 3 s; ``/big`` streams 64 MiB; lifespan is accepted."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            kind = message["type"].replace("lifespan.", "")
            await send({"type": f"lifespan.{kind}.complete"})
            if kind == "shutdown":
                return
    if scope["type"] == "websocket":
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        while (await receive())["type"] != "websocket.disconnect":
            pass
        return
    if scope["path"] == "/slow":
        await trio.sleep(3)
    big = scope["path"] == "/big"
    headers = [] if big else [(b"content-length", b"2")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    if big:
        chunk = b"x" * (1 << 20)
        for _ in range(64):
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b"ok"})


@dataclass
class Served:
    port: int
    connections: Connections
    stop: trio.Event
    stopped: trio.Event


@asynccontextmanager
async def serving(limits: ConnectionLimits = LIMITS) -> AsyncIterator[Served]:
    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.graceful_timeout = GRACE
    config.accesslog = None
    stop, stopped = trio.Event(), trio.Event()

    connections = Connections(limits)

    async def run(task_status: trio.TaskStatus[list[str]]) -> None:
        try:
            await serve(
                app, config, connections, shutdown_trigger=stop.wait, task_status=task_status
            )
        finally:
            stopped.set()

    async with trio.open_nursery() as nursery:
        binds: list[str] = await nursery.start(run)
        port = int(binds[0].rsplit(":", 1)[1])
        served = Served(port, connections, stop, stopped)
        yield served
        stop.set()


async def connect(port: int) -> trio.SocketStream:
    return await trio.open_tcp_stream("127.0.0.1", port)


async def read_until_closed(stream: trio.SocketStream) -> tuple[bytes, float]:
    """Everything the server sends, and the (virtual) time it closed the connection."""
    received = b""
    while True:
        try:
            data = await stream.receive_some(1 << 16)
        except trio.BrokenResourceError:  # reset: closed all the same
            data = b""
        if not data:
            return received, trio.current_time()
        received += data


async def read_response(stream: trio.SocketStream) -> bytes:
    received = b""
    while not received.endswith(b"\r\n\r\nok"):
        data = await stream.receive_some(1 << 16)
        assert data, f"closed before a response: {received!r}"
        received += data
    return received


async def test_a_silent_connection_is_closed_at_the_header_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with serving() as served:
        stream = await connect(served.port)
        start = trio.current_time()
        received, closed_at = await read_until_closed(stream)
        assert received == b""
        assert closed_at - start == pytest.approx(LIMITS.header_timeout)
        assert served.connections.statistics().timed_out == 1


async def test_a_request_head_sent_slowly_is_cut_off_at_the_header_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with serving() as served:
        stream = await connect(served.port)
        await trio.sleep(2)  # idle first (allowed), then a head trickled one line a second
        first_byte = trio.current_time()
        await stream.send_all(b"GET / HTTP/1.1\r\n")

        async def trickle() -> None:
            for number in range(100):
                await trio.sleep(1)
                try:
                    await stream.send_all(f"x-pad-{number}: y\r\n".encode())
                except trio.BrokenResourceError:
                    return

        async with trio.open_nursery() as nursery:
            nursery.start_soon(trickle)
            received, closed_at = await read_until_closed(stream)
            nursery.cancel_scope.cancel()
        assert b"200" not in received
        # The head was owed header_timeout after its first byte, not after the last one.
        assert closed_at - first_byte == pytest.approx(LIMITS.header_timeout - 2)


async def test_keep_alive_connection_is_closed_after_the_idle_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with serving() as served:
        stream = await connect(served.port)
        for _ in range(2):  # the connection serves several requests
            await stream.send_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
            response = await read_response(stream)
            assert response.startswith(b"HTTP/1.1 200")
            await trio.sleep(60)  # idle, but within keep-alive
        answered = trio.current_time() - 60
        await stream.send_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        await read_response(stream)
        answered = trio.current_time()
        received, closed_at = await read_until_closed(stream)
        assert received == b""
        assert closed_at - answered == pytest.approx(LIMITS.keep_alive)


async def test_connection_close_is_honoured(autojump_clock: trio.testing.MockClock) -> None:
    async with serving() as served:
        stream = await connect(served.port)
        await stream.send_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        start = trio.current_time()
        received, closed_at = await read_until_closed(stream)
        assert received.startswith(b"HTTP/1.1 200")
        assert received.endswith(b"ok")
        assert closed_at == start  # at once, not after a keep-alive timeout


async def test_above_the_cap_clients_get_503_and_accept_never_fails(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with serving(replace(LIMITS, max_connections=3)) as served:
        held = [await connect(served.port) for _ in range(3)]
        await trio.sleep(1)
        assert served.connections.statistics().open == 3
        refused = await connect(served.port)
        await refused.send_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        received, _ = await read_until_closed(refused)
        head, _, body = received.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 503")
        assert b"retry-after: 1" in head.lower()
        assert json.loads(body)["error"]["code"] == "TOO_MANY_CONNECTIONS"
        assert served.connections.statistics().refused == 1
        # A freed place is served again.
        await held[0].aclose()
        await trio.sleep(1)
        again = await connect(served.port)
        await again.send_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        assert (await read_response(again)).startswith(b"HTTP/1.1 200")


async def test_a_client_that_stops_reading_is_dropped_after_the_send_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with serving() as served:
        stream = await connect(served.port)
        await stream.send_all(b"GET /big HTTP/1.1\r\nhost: x\r\n\r\n")
        start = trio.current_time()
        while served.connections.statistics().open == 1:
            await trio.sleep(1)
        # The send stalled once the socket buffers filled (at once: nobody reads), and the
        # connection went after exactly one send timeout without progress.
        assert trio.current_time() - start == pytest.approx(LIMITS.send_timeout + 1, abs=1)


async def test_shutdown_closes_idle_connections_at_once_and_drains_requests(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with serving() as served:
        idle = await connect(served.port)
        await idle.send_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        await read_response(idle)
        busy = await connect(served.port)
        await busy.send_all(b"GET /slow HTTP/1.1\r\nhost: x\r\n\r\n")
        await trio.sleep(1)
        start = trio.current_time()
        served.stop.set()
        _, idle_closed = await read_until_closed(idle)
        assert idle_closed == start
        received, _ = await read_until_closed(busy)
        assert received.startswith(b"HTTP/1.1 200")  # the request in flight finished
        await served.stopped.wait()
        # Stopped when the slow request was done (it had 2 s left), not after the grace.
        assert trio.current_time() - start == pytest.approx(2)


async def test_an_exception_in_one_connection_stays_in_that_connection() -> None:
    """A WebSocket upgrade with a frame in the same write made Hypercorn's h11 layer raise
    out of the connection (its ERROR state); the server went down with it."""
    async with serving() as served:
        request = (
            b"GET /ws HTTP/1.1\r\nhost: x\r\nupgrade: websocket\r\nconnection: Upgrade\r\n"
            b"sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n\r\n"
        )
        frame = bytes([0x81, 0x80 | 4]) + b"\x00\x00\x00\x00" + b"ping"
        for _ in range(5):
            stream = await connect(served.port)
            await stream.send_all(request + frame)
            with trio.fail_after(5):
                await read_until_closed(stream)
        healthy = await connect(served.port)
        await healthy.send_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        with trio.fail_after(5):
            assert (await read_response(healthy)).startswith(b"HTTP/1.1 200")
