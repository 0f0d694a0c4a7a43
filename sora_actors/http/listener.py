"""Hypercorn's trio worker, composed here so that no client can take the server down.

Why not ``hypercorn.trio.serve``: it runs each connection's ``TCPServer`` straight under
``trio.serve_listeners`` in the server's nursery, so any exception one connection raises
(a malformed WebSocket frame racing the ping task, h11 refusing to send in its ERROR state,
bytes after an upgrade request) ends the whole process. This module does what
``hypercorn/trio/run.py`` does (lifespan, listeners, graceful drain) with four changes:

- **a guard per connection**: whatever escapes a connection is logged once and that socket
  closed; the server goes on;
- **a cap on open connections**: above it a client gets a 503 envelope and the socket is
  closed, instead of ``accept`` failing with EMFILE for everyone;
- **deadlines**: a new connection must send a complete request head within
  ``header_timeout``; between requests a connection may idle ``keep_alive`` seconds (and the
  next head must then complete within ``header_timeout`` of its first byte); a WebSocket
  peer that sends nothing, not even the pong to our ping, for ``websocket_idle`` is dropped
  (also one stuck inside a frame that announced more bytes than it sends); a send that
  cannot progress for ``send_timeout`` drops the connection (a peer that stops reading);
- **protocol events are shielded**: Hypercorn delivers ``Closed`` / ``Updated`` from inside
  the application's task, which Quart-Trio cancels right after the response; unshielded,
  ``Connection: close`` was ignored and the keep-alive timer never started, so idle
  connections lived for ever and held graceful shutdown for the whole grace period.
"""

from __future__ import annotations

import json
import logging
import math
import resource
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import trio
from hypercorn.config import Config
from hypercorn.events import Closed, Event, RawData, Updated
from hypercorn.protocol.ws_stream import WSStream
from hypercorn.trio.lifespan import Lifespan
from hypercorn.trio.statsd import StatsdLogger
from hypercorn.trio.tcp_server import MAX_RECV, TCPServer
from hypercorn.trio.worker_context import WorkerContext
from hypercorn.typing import ConnectionState, LifespanState
from hypercorn.utils import ShutdownError, raise_shutdown, repr_socket_addr, wrap_app

log = logging.getLogger("sora_actors.connections")

# File descriptors kept free above the connection cap: the database, content files, the
# upstream client's sockets, and the short-lived sockets of refused clients.
FD_HEADROOM = 128
# A refused client gets this long to take its 503 before the socket is closed.
REFUSAL_SECONDS = 2.0
# What a connection's tasks get to finish once its peer is gone.
LINGER_SECONDS = 1.0


@dataclass(frozen=True)
class ConnectionLimits:
    """How many connections may be open, and how long each may wait on its peer."""

    max_connections: int
    header_timeout: float
    keep_alive: float
    send_timeout: float
    # A WebSocket peer must send something (a pong at least) this often; inf: no limit.
    websocket_idle: float = math.inf

    @staticmethod
    def default_max_connections() -> int:
        """Below the process's descriptor limit, so ``accept`` itself never fails."""
        soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft == resource.RLIM_INFINITY:
            return 100_000
        return max(16, soft - FD_HEADROOM)


@dataclass(frozen=True)
class ConnectionStatistics:
    """A snapshot of the listener's counters."""

    open: int
    accepted: int
    refused: int
    crashed: int
    timed_out: int


@dataclass(frozen=True)
class _Site:
    """What every connection of one running server is served with."""

    app: Any
    config: Config
    context: WorkerContext
    state: LifespanState


class Connections:
    """Every client connection of one server: admission, the guard, and the counters."""

    def __init__(self, limits: ConnectionLimits) -> None:
        self.limits = limits
        self._open = 0
        self._accepted = 0
        self._refused = 0
        self._crashed = 0
        self._timed_out = 0

    def statistics(self) -> ConnectionStatistics:
        return ConnectionStatistics(
            open=self._open,
            accepted=self._accepted,
            refused=self._refused,
            crashed=self._crashed,
            timed_out=self._timed_out,
        )

    def counts(self) -> tuple[int, int]:
        """Connections open now, and closed since the start (for the garbage collector)."""
        return self._open, self._accepted - self._open

    def timed_out(self) -> None:
        self._timed_out += 1

    async def handle(self, site: _Site, stream: trio.SocketStream) -> None:
        """Serve one accepted connection; nothing it raises reaches the server's nursery."""
        if self._open >= self.limits.max_connections:
            self._refused += 1
            await _refuse(stream)
            return
        self._open += 1
        self._accepted += 1
        guarded = GuardedStream(stream, self.limits.send_timeout)
        connection = GuardedConnection(
            site.app, site.config, site.context, site.state, guarded, self
        )
        try:
            await connection.run()
        except BaseException as error:  # sorted in _contain: cancellation is re-raised
            self._contain(error, connection)
        finally:
            self._open -= 1
            await trio.aclose_forcefully(stream)

    def _contain(self, error: BaseException, connection: GuardedConnection) -> None:
        """Log what one connection raised and swallow it; re-raise only cancellation."""
        if isinstance(error, BaseExceptionGroup):
            cancelled, rest = error.split((trio.Cancelled, KeyboardInterrupt))
            if rest is not None:
                self._report(rest, connection)
            if cancelled is not None:
                raise cancelled
            return
        if isinstance(error, trio.Cancelled | KeyboardInterrupt | SystemExit):
            raise error
        self._report(error, connection)

    def _report(self, error: BaseException, connection: GuardedConnection) -> None:
        self._crashed += 1
        leaves = _leaves(error)
        summary = "; ".join(f"{type(leaf).__name__}: {leaf}" for leaf in leaves[:3])
        log.warning("connection from %s dropped: %s", connection.peer, summary[:500])
        log.debug("connection error detail", exc_info=error)


def _leaves(error: BaseException) -> list[BaseException]:
    if isinstance(error, BaseExceptionGroup):
        return [leaf for inner in error.exceptions for leaf in _leaves(inner)]
    return [error]


_REFUSAL_BODY = json.dumps(
    {
        "success": False,
        "message": "The server has too many open connections; retry shortly.",
        "error": {
            "code": "TOO_MANY_CONNECTIONS",
            "message": "The server has too many open connections; retry shortly.",
        },
    }
).encode()
_REFUSAL = (
    b"HTTP/1.1 503 Service Unavailable\r\n"
    b"content-type: application/json\r\n"
    b"retry-after: 1\r\n"
    b"connection: close\r\n"
    b"content-length: " + str(len(_REFUSAL_BODY)).encode() + b"\r\n\r\n" + _REFUSAL_BODY
)


async def _refuse(stream: trio.SocketStream) -> None:
    """Answer 503 without reading the request, then close (briefly draining what it sent,
    so the close does not reset the connection before the client read the answer)."""
    with trio.move_on_after(REFUSAL_SECONDS):
        try:
            await stream.send_all(_REFUSAL)
            await stream.send_eof()
            while await stream.receive_some(MAX_RECV):
                pass
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass
    await trio.aclose_forcefully(stream)


class GuardedStream:
    """A socket stream whose sends give up after ``send_timeout`` without progress.

    Hypercorn shields every send from cancellation, so a peer that never reads would hold
    its connection (and the server's drain) for ever. A send that times out aborts the
    socket and reports it broken, which Hypercorn already handles as a closed connection.
    Sends and ``send_eof`` are serialised here: Hypercorn's close path calls ``send_eof``
    while its ping task may be sending, which raised ``BusyResourceError``.
    """

    def __init__(self, stream: trio.SocketStream, send_timeout: float) -> None:
        self.stream = stream
        self.socket = stream.socket
        self._send_timeout = send_timeout
        self._send_lock = trio.Lock()

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        async with self._send_lock:
            with trio.move_on_after(self._send_timeout) as scope:
                await self.stream.send_all(data)
            if scope.cancelled_caught:
                await trio.aclose_forcefully(self.stream)
                raise trio.BrokenResourceError("the peer stopped reading")

    async def send_eof(self) -> None:
        async with self._send_lock:
            await self.stream.send_eof()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        return await self.stream.receive_some(max_bytes)

    async def aclose(self) -> None:
        await self.stream.aclose()


class GuardedConnection(TCPServer):
    """Hypercorn's connection with shielded protocol events and request-head deadlines."""

    def __init__(
        self,
        app: Any,
        config: Config,
        context: WorkerContext,
        state: LifespanState,
        stream: GuardedStream,
        owner: Connections,
    ) -> None:
        super().__init__(app, config, context, state, stream)  # type: ignore[arg-type]
        self._owner = owner
        self._limits = owner.limits
        self._idle = True
        # A new connection owes a complete request head within header_timeout.
        self._deadline = trio.current_time() + self._limits.header_timeout
        self._read_scope: trio.CancelScope | None = None
        try:
            host, port = stream.socket.getpeername()[:2]
            self.peer = f"{host}:{port}"
        except OSError:
            self.peer = "?"

    async def protocol_send(self, event: Event) -> None:
        if isinstance(event, Updated):
            self._idle = event.idle
            now = trio.current_time()
            self._set_deadline(now + self._limits.keep_alive if event.idle else math.inf)
        # Delivered from the application's task, which may already be cancelled: without
        # the shield a Closed never closed the socket and Updated never armed the idle task.
        with trio.CancelScope(shield=True):
            await super().protocol_send(event)

    def _set_deadline(self, deadline: float) -> None:
        self._deadline = deadline
        if self._read_scope is not None:
            self._read_scope.deadline = deadline

    async def _read_data(self) -> None:
        while True:
            with trio.CancelScope(deadline=self._deadline) as scope:
                self._read_scope = scope
                try:
                    data = await self.stream.receive_some(MAX_RECV)
                except (trio.ClosedResourceError, trio.BrokenResourceError):
                    break
                finally:
                    self._read_scope = None
            if scope.cancelled_caught:
                self._owner.timed_out()
                break
            if data and self._idle:
                # The first byte of a request: its head must be complete soon.
                now = trio.current_time()
                self._deadline = min(self._deadline, now + self._limits.header_timeout)
            await self.protocol.handle(RawData(bytes(data)))
            if self._is_websocket():
                self._deadline = trio.current_time() + self._limits.websocket_idle
            if data == b"":
                break
        await self.protocol.handle(Closed())
        # The peer is gone or timed out: close the socket now; whatever the connection still
        # runs (the WebSocket ping task sleeps a whole ping interval, the app may be
        # finishing) gets a moment, then stops, so a closed connection frees its memory.
        with trio.CancelScope(shield=True):
            await self._close()
            await self.idle_task.stop()
        nursery = self._task_group._nursery
        assert nursery is not None
        nursery.cancel_scope.deadline = trio.current_time() + LINGER_SECONDS

    def _is_websocket(self) -> bool:
        return isinstance(getattr(self.protocol.protocol, "stream", None), WSStream)

    async def _idle_timeout(self) -> None:
        """Runs while the connection is idle: close it as soon as shutdown starts (the
        keep-alive deadline itself is enforced by the read loop)."""
        await self.context.terminated.wait()
        with trio.CancelScope(shield=True):
            await self._initiate_server_close()


Trigger = Callable[[], Awaitable[None]]


async def serve(
    app: Any,
    config: Config,
    connections: Connections,
    *,
    shutdown_trigger: Trigger,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``app`` like Hypercorn's trio worker, until the trigger returns and the
    connections have drained (at most ``config.graceful_timeout``)."""
    config.set_statsd_logger_class(StatsdLogger)
    wrapped = wrap_app(app, config.wsgi_max_body_size, None)
    lifespan_state: LifespanState = {}
    lifespan = Lifespan(wrapped, config, lifespan_state)
    context = WorkerContext(None)

    async with trio.open_nursery() as lifespan_nursery:
        await lifespan_nursery.start(lifespan.handle_lifespan)
        await lifespan.wait_for_startup()

        site = _Site(wrapped, config, context, ConnectionState(lifespan_state.copy()))
        async with trio.open_nursery() as server_nursery:
            sockets = config.create_sockets()
            listeners = []
            binds = []
            for sock in sockets.insecure_sockets:
                sock.listen(config.backlog)
                listeners.append(trio.SocketListener(trio.socket.from_stdlib_socket(sock)))
                binds.append(f"http://{repr_socket_addr(sock.family, sock.getsockname())}")
            task_status.started(binds)
            try:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(raise_shutdown, shutdown_trigger)
                    nursery.start_soon(
                        partial(
                            trio.serve_listeners,
                            partial(connections.handle, site),
                            listeners,
                            handler_nursery=server_nursery,
                        )
                    )
            except BaseExceptionGroup as error:
                _, others = error.split((ShutdownError, KeyboardInterrupt))
                if others is not None:
                    raise others from None
            finally:
                await context.terminated.set()
                server_nursery.cancel_scope.deadline = trio.current_time() + float(
                    config.graceful_timeout
                )

        await lifespan.wait_for_shutdown()
        lifespan_nursery.cancel_scope.cancel()
