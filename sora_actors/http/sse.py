"""``GET /api/sse/task-updates``: task events as Server-Sent Events, from the same hub as /ws.

The old backend's later frontends follow tasks with an ``EventSource``: one stream per page
with every task of the user (or ``?videoId=`` for one), events named ``taskUpdate``. The
token comes as ``?token=`` (an EventSource cannot set headers) or in the Authorization
header. Each stream is a hub subscriber like a WebSocket connection: the same bounded queue,
coalescing of progress, and slow-consumer rule (dropped when the queue overflows or nothing
could be sent for ``ws_stuck_seconds``; the stream then ends and the browser reconnects).
An idle stream gets a comment (``: heartbeat``) every ``sse_heartbeat_seconds``.

Resuming: every event carries an ``id:``, the stream's cursor, which the browser sends back
as ``Last-Event-ID`` when it reconnects by itself. The cursor is exact, not a time:

- ``start``: when the stream first began (wall ms, less `CLOCK_SLACK_MS` for other
  instances' clocks);
- ``seen``: for every task the stream has delivered, the ``seq`` it last delivered.

A new stream starts with the current state of every unfinished task of the user and of any
task changed since ``start`` (so a task that ended just as the stream opened is not missed).

On reconnect the server replays the current state of each of the user's tasks whose ``seq``
is above what the cursor says was seen, among those changed since ``start`` (a task the
stream never delivered counts as seen at 0). A task's ``seq`` grows with every stored change,
so nothing seen is sent again (no duplicate) and every change made since is either in the
replay or a live event after it (no gap: the hub subscription is made before the replay is
read, and the stream drops an event whose ``seq`` it has already sent). The cursor grows by
about 24 characters per task the stream has delivered; Hypercorn takes request heads up to
16 KiB, so a single stream resumes exactly over several hundred tasks.

The hub encodes each event once for all SSE streams (`encode_sse`); only the ``id:`` line,
which is per stream, is written by the stream itself.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import struct
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import trio
from pydantic import BaseModel, Field
from quart import Blueprint, Response, request

from ..clock import wall_ms
from ..hub import Frames, Hub, Subscriber, TaskEvent
from ..storage import Task
from ..storage.tasks import tasks_changed_since, unfinished_of_user
from .apidoc import documented
from .context import ctx, live_account
from .envelope import ApiError
from .security import Principal, TokenError
from .tasks import owned_task
from .wire import task_messages

log = logging.getLogger("sora_actors.sse")

blueprint = Blueprint("sse", __name__)

PATH = "/api/sse/task-updates"
TRANSPORT = "sse"
EVENT = "taskUpdate"
# Other instances' clocks may be behind ours by this much (their changes' updated_at).
CLOCK_SLACK_MS = 5_000
# How long the browser waits before reconnecting (the SSE ``retry:`` field).
RETRY_MS = 2_000
_HEARTBEAT: Frames = (": heartbeat\n\n",)
_VIDEO_PREFIX = "video_"
_CURSOR_VERSION = "1."


def encode_sse(event: TaskEvent) -> Frames:
    """The hub's frames for SSE subscribers: ``(video_id, seq, data)``, made once per event."""
    task = event.task
    return (task.video_id, str(task.seq), _data(task, event.message))


def _data(task: Task, message: str | None) -> str:
    """The event's JSON: the WebSocket event's payload (the terminal one for a finished
    task) with ``type`` naming that event."""
    kind, payload = task_messages(task, message)[-1]
    return json.dumps({"type": kind, **payload}, separators=(",", ":"), ensure_ascii=False)


# -- the cursor ---------------------------------------------------------------------------


class BadCursor(ValueError):
    pass


@dataclass
class Cursor:
    """Where a stream is: when it began, and the last seq delivered per task."""

    start: int
    seen: dict[str, int] = field(default_factory=dict)

    def encode(self) -> str:
        parts = [struct.pack(">Q", self.start)]
        for video_id, seq in self.seen.items():
            parts.append(_encode_id(video_id))
            parts.append(_varint(seq))
        return _CURSOR_VERSION + base64.urlsafe_b64encode(b"".join(parts)).rstrip(b"=").decode()

    @classmethod
    def decode(cls, text: str) -> Cursor:
        if not text.startswith(_CURSOR_VERSION) or len(text) > 65_536:
            raise BadCursor(text[:32])
        body = text[len(_CURSOR_VERSION) :]
        try:
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
            (start,) = struct.unpack_from(">Q", raw)
            seen: dict[str, int] = {}
            at = 8
            while at < len(raw):
                video_id, at = _decode_id(raw, at)
                seen[video_id], at = _read_varint(raw, at)
        except (binascii.Error, struct.error, ValueError, IndexError, UnicodeDecodeError):
            raise BadCursor(text[:32]) from None
        if start >= 2**62:
            raise BadCursor(text[:32])
        return cls(start, seen)


def _encode_id(video_id: str) -> bytes:
    """``video_<uuid>`` as 17 bytes (tag 1 + the UUID); anything else tag 2 + length + text."""
    if video_id.startswith(_VIDEO_PREFIX):
        try:
            parsed = uuid.UUID(video_id[len(_VIDEO_PREFIX) :])
        except ValueError:
            parsed = None
        if parsed is not None and f"{_VIDEO_PREFIX}{parsed}" == video_id:
            return b"\x01" + parsed.bytes
    text = video_id.encode()[:255]
    return b"\x02" + bytes([len(text)]) + text


def _decode_id(raw: bytes, at: int) -> tuple[str, int]:
    tag = raw[at]
    if tag == 1:
        if at + 17 > len(raw):
            raise ValueError("truncated id")
        return f"{_VIDEO_PREFIX}{uuid.UUID(bytes=raw[at + 1 : at + 17])}", at + 17
    if tag == 2:
        size = raw[at + 1]
        if at + 2 + size > len(raw):
            raise ValueError("truncated id")
        return raw[at + 2 : at + 2 + size].decode(), at + 2 + size
    raise ValueError("unknown tag")


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        out.append(low | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _read_varint(raw: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = raw[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, at
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


# -- the stream ---------------------------------------------------------------------------


class Stream:
    """One client's event stream: its hub subscriber and what it has delivered."""

    def __init__(self, hub: Hub, cursor: Cursor, heartbeat_s: float) -> None:
        self.hub = hub
        self.cursor = cursor
        self.heartbeat_s = heartbeat_s
        self.sub: Subscriber = hub.connect(f"sse_{uuid.uuid4().hex}", TRANSPORT)

    def queue(self, task: Task) -> None:
        """Queue the current state of ``task`` (snapshot or replay) behind what waits."""
        self.sub.send((task.video_id, str(task.seq), _data(task, None)))

    def render(self, frames: Frames) -> bytes:
        """The bytes of the frames; an event this stream already delivered is dropped."""
        if len(frames) != 3:
            return "".join(frames).encode()
        video_id, seq_text, data = frames
        seq = int(seq_text)
        if seq <= self.cursor.seen.get(video_id, 0):
            return b""
        self.cursor.seen[video_id] = seq
        return f"id: {self.cursor.encode()}\nevent: {EVENT}\ndata: {data}\n\n".encode()

    async def body(self) -> AsyncIterator[bytes]:
        """Everything queued, as it comes; heartbeats while idle; ends once dropped."""
        try:
            yield f"retry: {RETRY_MS}\n\n".encode()
            while True:
                frames: Frames | None = _HEARTBEAT
                with trio.move_on_after(self.heartbeat_s):
                    frames = await self.sub.next()
                if frames is None:
                    return
                chunk = self.render(frames)
                if chunk:
                    yield chunk
                self.sub.sent()
        finally:
            self.hub.disconnect(self.sub)


async def _principal() -> Principal:
    """From the Authorization header, or ``?token=`` (an EventSource sends no headers)."""
    context = ctx()
    header = request.headers.get("Authorization")
    token = request.args.get("token")
    who = context.tokens.verify_header(header if header or not token else f"Bearer {token}")
    try:
        await live_account(context, who)
    except TokenError as error:
        raise ApiError(401, error.code, error.message) from None
    return who


def _cursor() -> Cursor | None:
    raw = request.headers.get("Last-Event-ID") or request.args.get("lastEventId")
    if not raw:
        return None
    try:
        return Cursor.decode(raw.strip())
    except BadCursor:
        raise ApiError(
            400, "INVALID_CURSOR", "Last-Event-ID: not an event id this stream sent"
        ) from None


class SseQuery(BaseModel):
    token: str | None = Field(default=None, description="the login token (or Authorization)")
    videoId: str | None = Field(default=None, description="follow this one task only")
    lastEventId: str | None = Field(
        default=None, description="as the Last-Event-ID header, for clients that cannot set it"
    )


class SseHeaders(BaseModel):
    last_event_id: str | None = Field(
        default=None, description="the id of the last event received: resume after it"
    )


@blueprint.get(PATH)
@documented(
    None,
    auth=True,
    query=SseQuery,
    headers=SseHeaders,
    raw={200: ("text/event-stream",)},
    errors={400: ("INVALID_CURSOR",), 404: ("TASK_NOT_FOUND",)},
)
async def task_updates() -> Response:
    """Task events as Server-Sent Events (``taskUpdate``); resumes from ``Last-Event-ID``.

    Authenticate with ``?token=`` or the Authorization header. ``?videoId=`` follows one
    task, otherwise every task of the user.
    """
    who = await _principal()
    services = ctx().services
    hub = services.runtime.hub
    resumed = _cursor()
    video_id = request.args.get("videoId") or None
    cursor = resumed or Cursor(wall_ms() - CLOCK_SLACK_MS)
    stream = Stream(hub, cursor, services.settings.sse_heartbeat_seconds)
    sub = stream.sub
    try:
        hub.authenticate(sub, who.user_id, who.expires_at_ms)
        # Subscribe first, read second: a change in between is both an event and in what
        # is read, and `render` keeps only the first of the two.
        if video_id is not None:
            hub.subscribe_task(sub, video_id)
            tasks = [await owned_task(video_id, who.user_id)]
        else:
            hub.subscribe_user(sub)
            database = services.storage.database
            changed = await tasks_changed_since(database, [who.user_id], cursor.start)
            if resumed is None:  # a new stream: every unfinished task, and any just changed
                unfinished = await unfinished_of_user(database, who.user_id)
                changed += [task for task in unfinished if task not in changed]
            tasks = sorted(changed, key=lambda task: (task.updated_at, task.video_id))
        for task in tasks:
            if task.seq > cursor.seen.get(task.video_id, 0):
                stream.queue(task)
        if video_id is not None:
            hub.release(sub, video_id, tasks[0].seq)
    except BaseException:
        hub.disconnect(sub)
        raise
    response = Response(
        stream.body(),
        status=200,
        content_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
    response.timeout = None  # a stream lives for as long as the page does
    return response


def install(hub: Hub) -> None:
    """Let the hub encode events for SSE streams (once per event for all of them)."""
    hub.add_encoder(TRANSPORT, encode_sse)
