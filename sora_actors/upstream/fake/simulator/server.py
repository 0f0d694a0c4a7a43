"""A minimal HTTP/1.1 server on Trio + h11.

Why not hypercorn/quart: the simulator must be able to close a socket without
sending any response (a "dropped connection"), and ASGI servers answer an
aborted request with a 500 instead. This layer is deliberately tiny: it parses
requests, calls one handler, and writes (or withholds) the response.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from http import HTTPStatus
from urllib.parse import parse_qs, unquote, urlsplit

import h11
import trio

MAX_BODY = 64 * 1024 * 1024


def _reason(status: int) -> bytes:
    try:
        return HTTPStatus(status).phrase.encode()
    except ValueError:
        return b""


@dataclass(slots=True)
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    received_at: float

    def q(self, name: str) -> str | None:
        v = self.query.get(name)
        return v[0] if v else None


@dataclass(slots=True)
class Response:
    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    drop: bool = False  # close the socket without answering
    delay_s: float = 0.0  # wait (real time) before answering or dropping


Handler = Callable[[Request], Awaitable[Response]]


async def _read_request(conn: h11.Connection, stream: trio.SocketStream) -> Request | None:
    head: h11.Request | None = None
    body = bytearray()
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            data = await stream.receive_some(65536)
            conn.receive_data(data)
            continue
        if isinstance(event, h11.Request):
            head = event
            received = trio.current_time()
        elif isinstance(event, h11.Data):
            body += event.data
            if len(body) > MAX_BODY:
                raise h11.RemoteProtocolError("body too large", error_status_hint=413)
        elif isinstance(event, h11.EndOfMessage):
            assert head is not None
            target = head.target.decode("latin-1")
            parts = urlsplit(target)
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in head.headers}
            return Request(
                method=head.method.decode("ascii").upper(),
                path=unquote(parts.path),
                query=parse_qs(parts.query),
                headers=headers,
                body=bytes(body),
                received_at=received,
            )
        elif isinstance(event, h11.ConnectionClosed):
            return None
        else:  # PAUSED or anything unexpected: give up on the connection
            return None


async def _send(conn: h11.Connection, stream: trio.SocketStream, resp: Response) -> None:
    headers = [(k, v) for k, v in resp.headers]
    headers.append(("content-length", str(len(resp.body))))
    out = (
        conn.send(
            h11.Response(status_code=resp.status, headers=headers, reason=_reason(resp.status))
        )
        or b""
    )
    if resp.body:
        out += conn.send(h11.Data(data=resp.body)) or b""
    out += conn.send(h11.EndOfMessage()) or b""
    await stream.send_all(out)


async def _connection(handler: Handler, stream: trio.SocketStream) -> None:
    conn = h11.Connection(h11.SERVER)
    try:
        while True:
            try:
                req = await _read_request(conn, stream)
            except h11.RemoteProtocolError as e:
                if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                    await _send(conn, stream, Response(e.error_status_hint, b"bad request"))
                return
            if req is None:
                return
            resp = await handler(req)
            if resp.delay_s > 0:
                await trio.sleep(resp.delay_s)
            if resp.drop:
                return
            await _send(conn, stream, resp)
            if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
                return
            conn.start_next_cycle()
    except (trio.BrokenResourceError, trio.ClosedResourceError, h11.LocalProtocolError):
        return
    finally:
        with trio.move_on_after(1) as scope:
            scope.shield = True
            await stream.aclose()


async def serve_http(
    handler: Handler,
    host: str,
    port: int,
    *,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Listen on host:port (0 = ephemeral), report the bound port, serve until cancelled."""
    listeners = await trio.open_tcp_listeners(port, host=host)
    bound = listeners[0].socket.getsockname()[1]
    task_status.started(int(bound))
    await trio.serve_listeners(partial(_connection, handler), listeners)
