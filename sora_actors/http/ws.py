"""``/ws``: the WebSocket protocol of the frontend contract.

Served straight from ASGI (`WebSocketRoute`, in front of the Quart app) rather than as a
Quart websocket route. Why: for a connection that lives for hours Quart keeps a request
context, a copy of the headers, a relay task and a second message queue; that was about
12 KiB of the ~51 KiB each connection cost at 10,000 connections. The protocol below needs
none of it: one ``receive`` and one ``send`` callable.

Each connection runs two tasks: the receiver handles client messages strictly one after
another (``auth`` completes before a ``subscribe_task`` sent right behind it is looked at),
and the sender drains the connection's bounded queue in the hub. Replies, snapshots and
pushed events all go through that one queue, so their order is the order they were made in.

Close codes: 4408 no ``auth`` within ``ws_auth_timeout_seconds``; 4401 the token expired
while connected, or (right after its ``authFailed``) the token's account was deleted,
disabled or banned or its session revoked, or (right after an ``error`` with code
SESSION_REVOKED, ACCOUNT_DISABLED, ACCOUNT_BANNED or INVALID_TOKEN) that happened while
connected: `Authenticated` hears of every such change from the access cache, on every
instance, and closes the connections that lost access; 4429 too slow (queue overflow, or
nothing could be sent for ``ws_stuck_seconds``), or too demanding (more messages or task
subscriptions than `wslimits.WsLimits` allows; an ``error`` message comes first); 1001 the server is
stopping; 1003 binary frame; 1009 message too large (Hypercorn closes first, from
``websocket_max_message_size``). The hub knows none of these: it says why it dropped a
subscriber (`DropReason`), and `CLOSE_CODES` maps that here.
"""

from __future__ import annotations

import json
import logging
import math
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn
from urllib.parse import parse_qs

import h11
import trio
import wsproto.utilities
from quart import Blueprint, current_app
from quart_trio import QuartTrio

from ..access import Changed, Refused
from ..clock import wall_ms
from ..hub import DropReason, Frames, TaskEvent
from ..storage import StorageUnavailable
from .context import HttpContext, ctx, live_account
from .security import TokenError
from .strictjson import JsonRefused, read_json
from .wire import task_messages, task_wire

log = logging.getLogger("sora_actors.ws")

blueprint = Blueprint("ws", __name__)

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Any  # quart's ASGI callable; typed loosely, as in observe.py

PATH = "/ws"
CLOSE_CODES = {
    DropReason.TOO_SLOW: 4429,
    DropReason.TOKEN_EXPIRED: 4401,
    DropReason.SHUTTING_DOWN: 1001,
}
CLOSE_AUTH_TIMEOUT = 4408
CLOSE_AUTH_FAILED = 4401  # the WebSocket's 401, as when a token expires while connected
CLOSE_UNSUPPORTED = 1003
CLOSE_TOO_BIG = 1009
CLOSE_TOO_MANY = 4429
MAX_ID_LENGTH = 200
HEARTBEAT_SLICE_SECONDS = 0.1
CAPABILITIES = (
    "auth",
    "subscribe_task",
    "unsubscribe_task",
    "subscribe_tasks",
    "unsubscribe_tasks",
    "ping",
    "heartbeat",
    "taskCancelled",
)


def frame(kind: str, payload: dict[str, Any], reply_to: str | int | None = None) -> str:
    """One envelope as JSON text: ``{type, id?, timestamp, payload}``."""
    message: dict[str, Any] = {"type": kind}
    if reply_to is not None:
        message["id"] = reply_to
    message["timestamp"] = wall_ms()
    message["payload"] = payload
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False)


def encode_event(event: TaskEvent) -> Frames:
    """What the hub sends for an event: serialised here once, shared by all subscribers."""
    return tuple(frame(kind, payload) for kind, payload in task_messages(event.task, event.message))


def install(app: QuartTrio, context: HttpContext) -> None:
    """Serve ``/ws`` in front of the app (the runtime made the hub with `encode_event`).

    Call before `observe.install`, so that its middleware (request id, access log) wraps
    this one too.
    """
    authenticated = Authenticated(context)
    context.services.runtime.access.watch(authenticated.recheck)
    app.asgi_app = WebSocketRoute(app.asgi_app, context, authenticated)  # type: ignore[method-assign,assignment]
    app.register_blueprint(blueprint)


class Authenticated:
    """The authenticated connections by user, so that a change to an account or a session
    (a ban, a deactivation, a role change, a logout) closes the ones that lost access."""

    def __init__(self, context: HttpContext) -> None:
        self._context = context
        self._by_user: dict[str, set[Connection]] = {}

    def add(self, connection: Connection, user_id: str) -> None:
        self._by_user.setdefault(user_id, set()).add(connection)

    def remove(self, connection: Connection, user_id: str | None) -> None:
        members = self._by_user.get(user_id) if user_id is not None else None
        if members is not None:
            members.discard(connection)
            if not members:
                del self._by_user[user_id]  # type: ignore[arg-type]

    async def recheck(self, changed: Changed) -> None:
        """Ask the access cache again for each connection the change may touch."""
        access = self._context.services.runtime.access
        users = tuple(self._by_user) if changed.everything else tuple(changed.users)
        candidates = [c for u in users for c in self._by_user.get(u, ())]
        if changed.sessions and not changed.everything:
            candidates += [
                c
                for members in self._by_user.values()
                for c in members
                if c.session_id in changed.sessions
            ]
        for connection in set(candidates):
            user_id, session_id = connection.sub.user_id, connection.session_id
            if user_id is None or session_id is None:
                continue
            try:
                await access.check(user_id, session_id)
            except Refused as refused:
                connection.revoke(refused.code, refused.message)
            except Exception:  # the database is away: the next change or reset rechecks
                log.warning("could not recheck a connection's access", exc_info=True)


@blueprint.before_app_serving
async def _start_background() -> None:
    """The heartbeats run in the app's nursery, cancelled with it (the hub's own sweeper
    is the runtime's)."""
    current_app.add_background_task(send_heartbeats, ctx())


async def send_heartbeats(context: HttpContext) -> NoReturn:
    """A heartbeat per connection per interval, spread over the interval in slices; never
    returns.

    Sending all of them at once would put one send per connection (10,000 of them: half a
    second of event-loop time) in front of the task events due at that moment.
    """
    hub = context.services.runtime.hub
    interval = context.services.settings.ws_heartbeat_seconds
    slices = max(1, int(interval / HEARTBEAT_SLICE_SECONDS))
    while True:
        payload = {
            "connectedClients": hub.connections,
            "uptime": round(context.services.uptime_seconds(), 3),
        }
        frames = (frame("heartbeat", payload),)  # serialised once per round
        subscribers = hub.subscribers()
        per_slice = math.ceil(len(subscribers) / slices)
        for index in range(slices):
            await trio.sleep(interval / slices)
            for subscriber in subscribers[index * per_slice : (index + 1) * per_slice]:
                subscriber.send(frames, key="heartbeat")


class BadMessage(Exception):
    """A client message the protocol cannot act on; answered with an ``error`` message."""

    def __init__(self, code: str, message: str, reply_to: str | int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.reply_to = reply_to


def _parse(
    text: str, max_depth: int
) -> tuple[str, dict[str, Any], dict[str, Any], str | int | None]:
    """``(type, payload, message, id)`` of a client message, or BadMessage."""
    try:
        message = read_json(text, max_depth)
    except JsonRefused as refused:
        raise BadMessage(refused.code, refused.message) from None
    if not isinstance(message, dict):
        raise BadMessage("INVALID_MESSAGE", "a message must be a JSON object")
    reply_to: str | int | None = None
    raw_id = message.get("id")
    if isinstance(raw_id, str | int) and not isinstance(raw_id, bool):
        reply_to = raw_id[:MAX_ID_LENGTH] if isinstance(raw_id, str) else raw_id
    kind = message.get("type")
    if not isinstance(kind, str) or not kind:
        raise BadMessage("INVALID_MESSAGE", "type: required, a string", reply_to)
    payload = message.get("payload")
    if payload is None:
        payload = {}
    if not isinstance(payload, dict):
        raise BadMessage("INVALID_MESSAGE", "payload: must be a JSON object", reply_to)
    return kind, payload, message, reply_to


def _field(payload: dict[str, Any], message: dict[str, Any], name: str) -> str:
    """A required string field, from the payload (or, leniently, the envelope itself)."""
    value = payload.get(name, message.get(name))
    if not isinstance(value, str) or not value.strip():
        raise BadMessage("VALIDATION_ERROR", f"payload.{name}: required, a non-empty string")
    if len(value) > 4096:
        raise BadMessage("VALIDATION_ERROR", f"payload.{name}: too long")
    return value.strip()


class Connection:
    """One WebSocket client: its hub subscriber and its in-order message handling."""

    __slots__ = (
        "_authenticated",
        "_close",
        "_context",
        "_farewell",
        "_hub",
        "_last_words",
        "_receive_message",
        "_registry",
        "_scope",
        "_send",
        "session_id",
        "sub",
    )

    def __init__(
        self, context: HttpContext, receive: Receive, send: Send, registry: Authenticated
    ) -> None:
        self._context = context
        self._registry = registry
        self.session_id: str | None = None
        self._hub = context.services.runtime.hub
        self._receive_message = receive
        self._send = send
        self.sub = self._hub.connect(f"conn_{uuid.uuid4().hex}")
        self._authenticated = trio.Event()
        self._scope = trio.CancelScope()
        self._close: tuple[int, str] | None = None  # this layer's own reason to close
        # The last frame to send through the queue, and the close code and reason after it.
        self._farewell: tuple[str, int, str] | None = None
        self._last_words: str | None = None  # an `error` sent right before our close

    async def run(self, token: str | None) -> None:
        """Serve the connection (accepted already) until either side ends it."""
        sub = self.sub
        try:
            async with trio.open_nursery() as nursery:
                self._scope = nursery.cancel_scope
                nursery.start_soon(self._sender)
                nursery.start_soon(self._auth_deadline)
                self._reply(
                    "connected",
                    {
                        "connectionId": sub.connection_id,
                        "serverVersion": self._context.services.version,
                        "capabilities": list(CAPABILITIES),
                    },
                )
                if token:
                    try:
                        await self._auth(token, None)
                    except StorageUnavailable:
                        self._error(
                            "DATABASE_UNAVAILABLE", "the database is unavailable; try again"
                        )
                await self._receive()
                nursery.cancel_scope.cancel()  # the client left, or was told to go
        finally:
            self._registry.remove(self, sub.user_id)
            self._hub.disconnect(sub)
            self._context.ws_limits.gone(sub)
        close = self._close
        if close is None and sub.dropped is not None:
            close = CLOSE_CODES[sub.dropped], sub.drop_message
        if self._last_words is not None:
            await self._send({"type": "websocket.send", "text": self._last_words})
        if close is not None:
            await self._send({"type": "websocket.close", "code": close[0], "reason": close[1]})

    def _end(self, code: int, reason: str) -> None:
        """Close the connection for a reason of this protocol (the hub is not involved)."""
        if self._close is None:
            log.info("closing connection %s: %s (%d)", self.sub.connection_id, reason, code)
            self._close = code, reason
        self._scope.cancel()

    # -- sending ----------------------------------------------------------------------

    def _reply(self, kind: str, payload: dict[str, Any], reply_to: str | int | None = None) -> None:
        self.sub.send((frame(kind, payload, reply_to),))

    def _error(self, code: str, message: str, reply_to: str | int | None = None) -> None:
        self._reply("error", {"code": code, "message": message}, reply_to)

    def _refuse(
        self,
        code: str,
        message: str,
        reply_to: str | int | None = None,
        close: int = CLOSE_TOO_MANY,
    ) -> None:
        """Close (4429 by default) after an ``error`` saying why (the queue is not drained
        first)."""
        self._last_words = frame("error", {"code": code, "message": message}, reply_to)
        self._end(close, message)

    def revoke(self, code: str, message: str) -> None:
        """The account or session lost access while connected: ``error`` then 4401."""
        self._refuse(code, message, close=CLOSE_AUTH_FAILED)

    async def _sender(self) -> None:
        """Drain the queue into the socket; when the hub drops the subscriber, end the rest."""
        while (frames := await self.sub.next()) is not None:
            for text in frames:
                await self._send({"type": "websocket.send", "text": text})
                if self._farewell is not None and text is self._farewell[0]:
                    self._end(*self._farewell[1:])
            self.sub.sent()
        self._scope.cancel()

    async def _auth_deadline(self) -> None:
        timeout = self._context.services.settings.ws_auth_timeout_seconds
        with trio.move_on_after(timeout) as waiting:
            await self._authenticated.wait()
        if waiting.cancelled_caught:
            self._end(CLOSE_AUTH_TIMEOUT, f"authentication timeout: no auth within {timeout:g} s")

    # -- receiving --------------------------------------------------------------------

    async def _receive(self) -> None:
        """Handle client messages in order until the client disconnects (or is dropped)."""
        limit = self._context.services.settings.ws_max_message_bytes
        while not self.sub.closed:
            message = await self._receive_message()
            if message["type"] != "websocket.receive":
                return  # websocket.disconnect
            data = message.get("text")
            if data is None:
                self._end(CLOSE_UNSUPPORTED, "binary frames are not supported; send JSON text")
                return
            if len(data) > limit // 4 and len(data.encode()) > limit:
                self._end(CLOSE_TOO_BIG, f"message larger than {limit} bytes")
                return
            if not self._context.ws_limits.message(self.sub):
                self._refuse("RATE_LIMITED", "too many messages; slow down")
                return
            await self._handle(data)

    async def _handle(self, text: str) -> None:
        reply_to: str | int | None = None
        try:
            depth = self._context.services.settings.max_json_depth
            kind, payload, message, reply_to = _parse(text, depth)
            await self._dispatch(kind, payload, message, reply_to)
        except BadMessage as bad:
            self._error(bad.code, bad.message, bad.reply_to or reply_to)
        except StorageUnavailable:
            self._error("DATABASE_UNAVAILABLE", "the database is unavailable; try again", reply_to)
        except Exception:
            log.exception("websocket message handling failed")
            self._error("INTERNAL_ERROR", "something went wrong on our side", reply_to)

    async def _dispatch(
        self,
        kind: str,
        payload: dict[str, Any],
        message: dict[str, Any],
        reply_to: str | int | None,
    ) -> None:
        if kind == "auth":
            await self._auth(_field(payload, message, "token"), reply_to)
        elif kind == "ping":
            self._reply("pong", {}, reply_to)
        elif kind not in (
            "subscribe_task",
            "unsubscribe_task",
            "subscribe_tasks",
            "unsubscribe_tasks",
        ):
            raise BadMessage("UNKNOWN_TYPE", f"unknown message type {kind[:64]!r}")
        elif self.sub.user_id is None:
            raise BadMessage("AUTH_REQUIRED", "authenticate first (send auth with your token)")
        elif kind == "subscribe_task":
            await self._subscribe_task(_field(payload, message, "videoId"), reply_to)
        elif kind == "unsubscribe_task":
            video_id = _field(payload, message, "videoId")
            self._hub.unsubscribe_task(self.sub, video_id)
            self._reply("unsubscribeSuccess", {"videoId": video_id, "subscribed": False}, reply_to)
        elif kind == "subscribe_tasks":
            self._hub.subscribe_user(self.sub)
            self._reply(
                "subscribeTasksSuccess", {"userId": self.sub.user_id, "subscribed": True}, reply_to
            )
        else:
            self._hub.unsubscribe_user(self.sub)
            self._reply(
                "unsubscribeTasksSuccess",
                {"userId": self.sub.user_id, "subscribed": False},
                reply_to,
            )

    async def _auth(self, token: str, reply_to: str | int | None) -> None:
        try:
            principal = self._context.tokens.verify(token)
        except TokenError as error:
            self._reply("authFailed", {"error": error.message, "code": error.code}, reply_to)
            return
        try:
            await live_account(self._context, principal)
        except TokenError as error:
            # The token is genuine but will never work again: say so, then close.
            text = frame("authFailed", {"error": error.message, "code": error.code}, reply_to)
            self._farewell = (text, CLOSE_AUTH_FAILED, error.message)
            self.sub.send((text,))
            return
        if self.sub.user_id not in (None, principal.user_id):
            self._reply(
                "authFailed",
                {
                    "error": "this connection belongs to another user",
                    "code": "ALREADY_AUTHENTICATED",
                },
                reply_to,
            )
            return
        self._hub.authenticate(self.sub, principal.user_id, principal.expires_at_ms)
        self.session_id = principal.session_id
        self._registry.add(self, principal.user_id)
        self._context.ws_limits.authenticated(self.sub)
        self._authenticated.set()
        self._reply(
            "authSuccess",
            {
                "userId": principal.user_id,
                "username": principal.username,
                "sessionId": principal.session_id,
                "expiresAt": principal.expires_at_ms,
            },
            reply_to,
        )

    async def _subscribe_task(self, video_id: str, reply_to: str | int | None) -> None:
        """Subscribe first, then read the snapshot: events in between are held, not lost."""
        refused = self._context.ws_limits.subscription_refused(self.sub, video_id)
        if refused is not None:
            self._refuse("TOO_MANY_SUBSCRIPTIONS", refused, reply_to)
            return
        self._hub.subscribe_task(self.sub, video_id)
        try:
            task = await self._context.services.storage.tasks.get(video_id)
        except BaseException:
            self._hub.unsubscribe_task(self.sub, video_id)
            raise
        if task is None or task.user_id != self.sub.user_id:
            self._hub.unsubscribe_task(self.sub, video_id)
            raise BadMessage("TASK_NOT_FOUND", f"No task {video_id[:MAX_ID_LENGTH]}.")
        self._reply("subscribeSuccess", {"videoId": video_id, "subscribed": True}, reply_to)
        self._reply("taskStatus", task_wire(task))
        if task.terminal:
            # Pages wait for the terminal event to show the result: a finished task's comes
            # right after its snapshot, with the same seq.
            kind, payload = task_messages(task, None)[-1]
            self._reply(kind, payload)
        self._hub.release(self.sub, video_id, task.seq)


class WebSocketRoute:
    """ASGI middleware: ``/ws`` connections are served here, everything else by ``inner``."""

    def __init__(self, inner: ASGIApp, context: HttpContext, registry: Authenticated) -> None:
        self._inner = inner
        self._context = context
        self._registry = registry

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket" or scope["path"] != PATH:
            await self._inner(scope, receive, send)
            return
        if (await receive())["type"] != "websocket.connect":
            return  # gone before the handshake completed
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        token = query.get("token", [None])[-1]
        try:
            await send({"type": "websocket.accept"})
            await Connection(self._context, receive, send, self._registry).run(token)
            # Read on until the client's side ends too (its close reply, or the socket):
            # a client still sending after we closed (a flood) would otherwise fill
            # Hypercorn's app queue, and its read loop, blocked on that queue, would never
            # see the closing handshake nor the end of the socket. A client that says
            # nothing is ended by the listener's WebSocket silence deadline.
            while (await receive())["type"] != "websocket.disconnect":
                pass
        except* (h11.LocalProtocolError, wsproto.utilities.LocalProtocolError) as error:
            # The transport refused to send: the client broke the protocol (e.g. frames
            # before the handshake's answer) and Hypercorn already answered or dropped it.
            log.debug("websocket transport failed: %r", error.exceptions[0])
