"""Hostile bytes on raw sockets: WebSocket frames and HTTP/1.1 that break the protocols.

One write of an upgrade request plus a frame used to end the whole server process (an
exception from Hypercorn's connection tasks reached the server's nursery). Here every case
runs against a real server while a well-behaved client keeps a task subscription; the
server must live, the witness must miss no event, and each bad connection must be closed
with the right code or dropped, never left hanging.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import struct
from pathlib import Path
from typing import Any

import pytest
import trio
from trio_websocket import open_websocket_url

from sora_actors.settings import Settings
from tests.conftest import make_settings
from tests.harness import LiveServer
from tests.wsclient import Session, ws_url

# A frame's fate: ("close", code) | ("dropped",) | ("open",) when nothing happened in time.
Outcome = tuple[Any, ...]
DROPPED: Outcome = ("dropped",)
PROTOCOL_ERROR: set[Outcome] = {("close", 1002), DROPPED}
BAD_DATA: set[Outcome] = {("close", 1007), DROPPED}
TOO_BIG: set[Outcome] = {("close", 1009), DROPPED}
UNSUPPORTED: set[Outcome] = {("close", 1003)}
PING = b'{"type":"ping"}'


@pytest.fixture
def database_url(sqlite_url: str) -> str:
    """Transport behaviour, not storage: SQLite is enough."""
    return sqlite_url


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    # Pings every 0.2 s: Hypercorn's ping task racing a close was one of the crashes.
    return make_settings(
        tmp_path,
        database_url,
        simulator_time_scale=12,
        polling_speedup=10,
        ws_ping_seconds=0.2,
    )


def frame(
    opcode: int,
    payload: bytes,
    *,
    fin: bool = True,
    rsv: int = 0,
    mask: bool = True,
    length: int | None = None,
    width: int | None = None,
) -> bytes:
    """A client frame; ``length``/``width`` forge the length field (7, 16 or 64 bits)."""
    size = len(payload) if length is None else length
    width = width or (7 if size < 126 else 16 if size < 65536 else 64)
    first = (0x80 if fin else 0) | (rsv << 4) | opcode
    mask_bit = 0x80 if mask else 0
    if width == 7:
        head = bytes([first, mask_bit | size])
    elif width == 16:
        head = bytes([first, mask_bit | 126]) + struct.pack(">H", size)
    else:
        head = bytes([first, mask_bit | 127]) + struct.pack(">Q", size)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(byte ^ key[i % 4] for i, byte in enumerate(payload))


def close_frame(code: int, reason: bytes = b"") -> bytes:
    return frame(0x8, struct.pack(">H", code) + reason)


def upgrade_request(port: int) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


def server_frames(data: bytes) -> list[tuple[int, bytes]]:
    """Parse the server's (unmasked) frames; a truncated tail is ignored."""
    frames = []
    while len(data) >= 2:
        opcode, size, offset = data[0] & 0x0F, data[1] & 0x7F, 2
        if size == 126:
            size, offset = struct.unpack(">H", data[2:4])[0], 4
        elif size == 127:
            size, offset = struct.unpack(">Q", data[2:10])[0], 10
        if len(data) < offset + size:
            break
        frames.append((opcode, data[offset : offset + size]))
        data = data[offset + size :]
    return frames


async def read_all(stream: trio.SocketStream, seconds: float = 10.0) -> tuple[bytes, bool]:
    """What the server sent, and whether it ended the connection within ``seconds``."""
    received = b""
    with trio.move_on_after(seconds):
        while True:
            try:
                data = await stream.receive_some(1 << 16)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                data = b""
            if not data:
                return received, True
            received += data
    return received, False


async def send_quietly(stream: trio.SocketStream, data: bytes) -> None:
    """Send; the server may close before it has read everything, which is its right."""
    with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
        await stream.send_all(data)


async def websocket_case(port: int, payload: bytes, half_close: bool = False) -> Outcome:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    try:
        await stream.send_all(upgrade_request(port))
        head = b""
        while b"\r\n\r\n" not in head:
            data = await stream.receive_some(4096)
            assert data, "closed during the handshake"
            head += data
        assert head.startswith(b"HTTP/1.1 101"), head
        await send_quietly(stream, payload)
        if half_close:
            await stream.send_eof()
        rest, ended = await read_all(stream)
        frames = server_frames(head.split(b"\r\n\r\n", 1)[1] + rest)
        closes = [body for opcode, body in frames if opcode == 0x8]
        if closes:
            code = struct.unpack(">H", closes[0][:2])[0] if len(closes[0]) >= 2 else 1005
            return ("close", code)
        return DROPPED if ended else ("open",)
    finally:
        await stream.aclose()


WEBSOCKET_CASES: list[tuple[str, bytes, set[Outcome]]] = [
    *[(f"opcode {op}", frame(op, b"x"), PROTOCOL_ERROR) for op in (3, 4, 5, 6, 7, 11, 12, 15)],
    *[(f"rsv {rsv}", frame(0x1, PING, rsv=rsv), PROTOCOL_ERROR) for rsv in (1, 2, 4, 7)],
    ("unmasked text", frame(0x1, PING, mask=False), PROTOCOL_ERROR),
    ("ping of 126 bytes", frame(0x9, b"p" * 126), PROTOCOL_ERROR),
    ("fragmented ping", frame(0x9, b"p", fin=False) + frame(0x0, b"q"), PROTOCOL_ERROR),
    ("continuation without start", frame(0x0, PING), PROTOCOL_ERROR),
    (
        "text inside a fragmented text",
        frame(0x1, b'{"type":', fin=False) + frame(0x1, PING),
        PROTOCOL_ERROR,
    ),
    ("invalid UTF-8", frame(0x1, b'{"type":"\xff\xfe"}'), BAD_DATA),
    (
        "invalid UTF-8 split over fragments",
        frame(0x1, b'{"type":"\xe2', fin=False) + frame(0x0, b'\x28\xa1"}'),
        BAD_DATA,
    ),
    *[
        (f"close code {code}", close_frame(code), PROTOCOL_ERROR)
        for code in (0, 999, 1004, 1005, 1006, 1015, 2999, 5000)
    ],
    ("close payload of one byte", frame(0x8, b"\x03"), PROTOCOL_ERROR),
    ("close reason not UTF-8", close_frame(1000, b"\xff"), BAD_DATA | PROTOCOL_ERROR),
    (
        "64-bit length, top bit set",
        frame(0x1, b"", length=1 << 63, width=64),
        PROTOCOL_ERROR | TOO_BIG,
    ),
    ("64-bit length of 1 TiB", frame(0x1, b"", length=1 << 40, width=64), TOO_BIG | PROTOCOL_ERROR),
    ("5 MB text frame", frame(0x1, b" " * (5 * 1024 * 1024)), TOO_BIG),
    ("binary frame", frame(0x2, PING), UNSUPPORTED),
    (
        "truncated frame, then half-close",
        frame(0x1, PING)[:5],
        {DROPPED, ("close", 1002), ("close", 1006)},
    ),
]


@pytest.mark.slow
async def test_frame_fuzzer_leaves_server_and_other_clients_untouched(server: LiveServer) -> None:
    port = int(server.base_url.rsplit(":", 1)[1])
    headers = await server.user("witness")
    token = headers["Authorization"].removeprefix("Bearer ")
    created = await server.client.post(
        "/api/video/tasks", json={"prompt": "a calm lake", "duration": 5}, headers=headers
    )
    assert created.status_code == 201, created.text
    video_id = created.json()["data"]["videoId"]
    witnessed: list[dict[str, Any]] = []
    outcomes: dict[str, Outcome] = {}

    async def witness() -> None:
        async with open_websocket_url(ws_url(server.base_url)) as connection:
            session = Session(connection)
            await session.recv_type("connected")
            assert (await session.auth(token))["type"] == "authSuccess"
            _, snapshot = await session.subscribe(video_id)
            witnessed.append(snapshot)
            done = ("taskCompleted", "taskFailed", "taskCancelled")
            witnessed.extend(await session.recv_until(lambda m: m["type"] in done, timeout=120))

    async def fuzz() -> None:
        for name, payload, _ in WEBSOCKET_CASES:
            half_close = name.startswith("truncated")
            outcomes[name] = await websocket_case(port, payload, half_close)
        # Frames and the upgrade request in one write (the original one-packet crash).
        for attempt in range(10):
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            await stream.send_all(upgrade_request(port) + frame(0x1, PING))
            received, ended = await read_all(stream)
            await stream.aclose()
            assert ended, "the connection was left hanging"
            # RFC 6455 4.1: a client must wait for the 101 before sending frames.
            assert received.startswith((b"HTTP/1.1 400", b"HTTP/1.1 101")) or not received
            outcomes[f"frame in the upgrade write {attempt}"] = DROPPED
        # A valid control frame between fragments is allowed and answered.
        outcomes["ping between fragments"] = await websocket_case(
            port,
            frame(0x1, b'{"type":', fin=False)
            + frame(0x9, b"hi")
            + frame(0x0, b'"ping"}')
            + close_frame(1000),
        )

    async with trio.open_nursery() as nursery:
        nursery.start_soon(witness)
        nursery.start_soon(fuzz)

    for name, _, allowed in WEBSOCKET_CASES:
        assert outcomes[name] in allowed, (name, outcomes[name])
    assert outcomes["ping between fragments"] == ("close", 1000)
    # The witness missed nothing: every seq from its snapshot to the terminal event.
    final = (await server.client.get(f"/api/video/tasks/{video_id}", headers=headers)).json()
    seqs = sorted({message["payload"]["seq"] for message in witnessed})
    assert seqs == list(range(seqs[0], final["data"]["seq"] + 1))
    assert witnessed[-1]["type"] == "taskCompleted"
    assert (await server.client.get("/health")).status_code == 200


HTTP_CASES: list[tuple[str, bytes]] = [
    ("garbage request line", b"GARBAGE\r\n\r\n"),
    ("binary noise", bytes(range(256)) * 4),
    ("unknown HTTP version", b"GET /health HTTP/9.9\r\nHost: x\r\n\r\n"),
    ("header without colon", b"GET /health HTTP/1.1\r\nHost x\r\n\r\n"),
    ("NUL in a header", b"GET /health HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n"),
    (
        "bad chunk size",
        b"POST /api/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\nZZZ\r\n{}\r\n0\r\n\r\n",
    ),
    (
        "content-length and chunked",
        b"POST /api/auth/login HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
    ),
    (
        "negative content-length",
        b"POST /api/auth/login HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
    ),
    (
        "200 KB of headers",
        b"GET /health HTTP/1.1\r\nHost: x\r\n" + b"X-P: " + b"a" * 200_000 + b"\r\n\r\n",
    ),
    (
        "pipelined garbage after a good request",
        b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n\x00\x01\x02 nonsense\r\n\r\n",
    ),
    (
        "chunked body cut short, then half-close",
        b"POST /api/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b'Transfer-Encoding: chunked\r\n\r\n10\r\n{"a"',
    ),
]


@pytest.mark.slow
@pytest.mark.parametrize(("name", "payload"), HTTP_CASES, ids=[case[0] for case in HTTP_CASES])
async def test_malformed_http_is_answered_or_dropped(
    server: LiveServer, name: str, payload: bytes
) -> None:
    port = int(server.base_url.rsplit(":", 1)[1])
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    await send_quietly(stream, payload)
    await stream.send_eof()
    received, ended = await read_all(stream)
    await stream.aclose()
    assert ended, f"{name}: the connection was left open"
    statuses = [
        int(line.split(b" ")[1])
        for line in received.split(b"\r\n")
        if line.startswith(b"HTTP/1.1 ")
    ]
    if name.startswith("pipelined"):
        assert statuses[:1] == [200]
        statuses = statuses[1:]
    # A client error answered as such (h11 or the app), never a 500 or a success.
    assert all(400 <= status < 500 or status == 501 for status in statuses), (name, received[:300])
    assert b"Traceback" not in received
    health = await server.client.get("/health")
    assert health.status_code == 200
    assert json.loads(health.text)["data"]["status"] == "ok"


async def test_server_keeps_serving_after_a_storm_of_crashing_writes(server: LiveServer) -> None:
    """The one-packet crash, 50 times and 10 at once, with normal requests in between."""
    port = int(server.base_url.rsplit(":", 1)[1])

    async def crash_attempt() -> None:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        await send_quietly(stream, upgrade_request(port) + frame(0x1, PING))
        await read_all(stream, 5)
        await stream.aclose()

    for _ in range(5):
        async with trio.open_nursery() as nursery:
            for _ in range(10):
                nursery.start_soon(crash_attempt)
        response = await server.client.get("/health")
        assert response.status_code == 200
    metrics = (await server.client.get("/metrics")).text
    figures = {
        line.split()[0]: float(line.split()[1])
        for line in metrics.splitlines()
        if line.startswith("sora_connections_")
    }
    assert figures["sora_connections_accepted_total"] >= 50
    assert figures["sora_connections_refused_total"] == 0
    assert figures["sora_connections_open"] >= 1  # this client's own connection
