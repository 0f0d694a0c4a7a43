"""The event hub: actors publish task events; subscribers (WebSocket connections) get them.

Publishing never blocks an actor: it only appends to in-memory queues. Each event is
serialised once (by an encoder the http layer injects, since this room must not know the
wire format) and the same frames are handed to every subscriber of the task or its owner;
subscribers are indexed by task and by user, so a publish costs O(its subscribers).

Each subscriber has a bounded send queue. A consumer that falls behind has its intermediate
progress coalesced (the latest per task is kept); terminal events and replies are never
dropped. A subscriber whose queue overflows even so, or that completes no send for
``stuck_seconds``, is dropped and forgets everything it held. The hub says why (a
`DropReason`); the connection layer decides what that means on its wire (a close code).

Counters are read as one snapshot (`Hub.statistics`, `Subscriber.statistics`), the way
trio's ``statistics()`` methods work, never as attributes one by one.
"""

from __future__ import annotations

import enum
import logging
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NoReturn

import trio

from .clock import wall_ms
from .storage import Task

log = logging.getLogger("sora_actors.hub")

Listener = Callable[["TaskEvent"], None]
Frames = tuple[str, ...]
Encode = Callable[["TaskEvent"], Frames]


class DropReason(enum.Enum):
    """Why the hub stopped delivering to a subscriber."""

    TOO_SLOW = "too slow"  # the send queue overflowed, or nothing could be sent for too long
    TOKEN_EXPIRED = "token expired"
    SHUTTING_DOWN = "shutting down"  # `Hub.close_all`


@dataclass(frozen=True, slots=True)
class SubscriberStatistics:
    """One subscriber's queue: items waiting now, the most ever waiting, progress replaced."""

    queued: int
    high_water: int
    coalesced: int


@dataclass(frozen=True, slots=True)
class HubStatistics:
    """The hub at one moment; counters count since the hub was made."""

    connections: int
    watched_tasks: int  # tasks some connection follows one by one
    watched_users: int  # users some connection follows wholesale
    published: int  # events serialised (once each) for at least one subscriber
    coalesced: int  # progress events replaced by a later one in some send queue
    dropped: int  # subscribers dropped as too slow or for an expired token


@dataclass(frozen=True, slots=True)
class TaskEvent:
    """A task right after a persisted change (its ``seq`` says which one)."""

    task: Task
    message: str | None = None


class _Item:
    """Frames waiting in a send queue; ``key`` marks the ones a later item may replace."""

    __slots__ = ("frames", "key", "seq")

    def __init__(self, frames: Frames, key: str | None, seq: int = 0) -> None:
        self.frames = frames
        self.key = key
        self.seq = seq


class Subscriber:
    """One connection's subscriptions and bounded send queue.

    ``size`` is the soft bound: from there on, progress for a task that already waits in
    the queue replaces it instead of queueing behind it. Items that cannot be coalesced
    (replies, terminal events, the first progress of another task) still queue, up to
    ``2 * size``; past that the subscriber is dropped rather than allowed to grow.
    """

    __slots__ = (
        "_coalesced",
        "_floor",
        "_held",
        "_high_water",
        "_hub",
        "_pending",
        "_queue",
        "_ready",
        "_size",
        "_stalled_since",
        "all_tasks",
        "connection_id",
        "drop_message",
        "dropped",
        "expires_at_ms",
        "tasks",
        "transport",
        "user_id",
    )

    def __init__(self, hub: Hub, connection_id: str, size: int, transport: str = "ws") -> None:
        self._hub = hub
        self._size = size
        self._queue: deque[_Item] = deque()
        self._pending: dict[str, _Item] = {}
        self._ready = trio.Event()
        self._stalled_since: float | None = None
        # Tasks whose snapshot is being read: their events wait here, not in the queue.
        self._held: dict[str, list[_Item]] = {}
        # Per subscribed task, the last seq the client has seen (snapshot or event).
        self._floor: dict[str, int] = {}
        self.connection_id = connection_id
        self.transport = transport  # which encoder's frames it gets (see `Hub.add_encoder`)
        self.user_id: str | None = None
        self.expires_at_ms: int | None = None
        self.tasks: set[str] = set()
        self.all_tasks = False
        self.dropped: DropReason | None = None
        self.drop_message = ""
        self._coalesced = 0
        self._high_water = 0

    @property
    def closed(self) -> bool:
        """Dropped by the hub: nothing more is delivered."""
        return self.dropped is not None

    @property
    def queued(self) -> int:
        """Items waiting to be sent (the bounded quantity)."""
        return len(self._queue)

    def statistics(self) -> SubscriberStatistics:
        return SubscriberStatistics(len(self._queue), self._high_water, self._coalesced)

    # -- producers --------------------------------------------------------------------

    def send(self, frames: Frames, *, key: str | None = None) -> None:
        """Queue frames for the client (replies; ``key`` for replaceable ones, e.g. heartbeat)."""
        self._push(_Item(frames, key))

    def offer(self, video_id: str, seq: int, terminal: bool, frames: Frames) -> None:
        """Queue a task event (the hub calls this), unless the client's snapshot covers it."""
        item = _Item(frames, None if terminal else video_id, seq)
        held = self._held.get(video_id)
        if held is not None:
            if held and held[-1].key is not None and item.key is not None:
                held[-1] = item  # only the latest progress matters before the snapshot
            else:
                held.append(item)
            return
        floor = self._floor.get(video_id)
        if floor is not None:
            if seq <= floor:
                return  # already covered by the snapshot the client got
            self._floor[video_id] = seq
        if terminal and len(self._queue) >= self._size:
            superseded = self._pending.pop(video_id, None)
            if superseded is not None:
                self._queue.remove(superseded)
                self._coalesced += 1
        self._push(item)

    def _push(self, item: _Item) -> None:
        if self.closed:
            return
        queue = self._queue
        if item.key is not None and len(queue) >= self._size:
            waiting = self._pending.get(item.key)
            if waiting is not None:
                waiting.frames, waiting.seq = item.frames, item.seq
                self._coalesced += 1
                return
        queue.append(item)
        if item.key is not None:
            self._pending[item.key] = item
        if len(queue) > self._high_water:
            self._high_water = len(queue)
        if len(queue) > 2 * self._size:
            self.drop(DropReason.TOO_SLOW, "too slow: the send queue overflowed")
            return
        if self._stalled_since is None:
            self._stalled_since = trio.current_time()
        self._ready.set()

    def hold(self, video_id: str) -> None:
        """Keep the task's events aside until `release` (its snapshot is being read)."""
        self._held[video_id] = []
        self._floor.pop(video_id, None)

    def release(self, video_id: str, seq: int) -> None:
        """The client has the snapshot at ``seq``: queue what was held and came after it."""
        held = self._held.pop(video_id, [])
        self._floor[video_id] = seq
        for item in held:
            self.offer(video_id, item.seq, item.key is None, item.frames)

    def forget(self, video_id: str) -> None:
        """Drop what is held or remembered for the task (it was unsubscribed)."""
        self._held.pop(video_id, None)
        self._floor.pop(video_id, None)

    # -- the consumer (the connection's sender) -----------------------------------------

    async def next(self) -> Frames | None:
        """The next frames to send; None once the subscriber is dropped."""
        while not self._queue:
            if self.closed:
                return None
            if self._ready.is_set():
                self._ready = trio.Event()
            await self._ready.wait()
        if self.closed:
            return None
        item = self._queue.popleft()
        if item.key is not None and self._pending.get(item.key) is item:
            del self._pending[item.key]
        return item.frames

    def sent(self) -> None:
        """Report that the frames from `next` went out (the stuck clock restarts)."""
        self._stalled_since = trio.current_time() if self._queue else None

    def stalled_for(self, now: float) -> float:
        return 0.0 if self._stalled_since is None else now - self._stalled_since

    def drop(self, reason: DropReason, message: str) -> None:
        """Stop delivering, drop what is queued, and leave the hub (`next` returns None)."""
        if self.dropped is not None:
            return
        log.info("dropping connection %s: %s", self.connection_id, message)
        self.dropped, self.drop_message = reason, message
        self._queue.clear()
        self._pending.clear()
        self._held.clear()
        self._hub.disconnect(self)
        self._ready.set()


class Hub:
    """Fan-out of task events to subscribers registered per task and per owner."""

    def __init__(
        self, encode: Encode | None = None, *, queue_size: int = 256, stuck_seconds: float = 30.0
    ) -> None:
        """``encode`` turns an event into wire frames (the http layer's format; without one,
        events reach listeners only). ``queue_size`` and ``stuck_seconds``: see `Subscriber`."""
        self._encoders: dict[str, Encode] = {"ws": encode} if encode is not None else {}
        self._listeners: list[Listener] = []
        self._subscribers: dict[str, Subscriber] = {}
        self._by_task: dict[str, set[Subscriber]] = {}
        self._by_user: dict[str, set[Subscriber]] = {}
        self.queue_size = queue_size
        self.stuck_seconds = stuck_seconds
        self._published = 0
        self._dropped = 0
        self._coalesced_gone = 0  # coalesced by subscribers that have left
        self._closing: str | None = None

    def add_encoder(self, transport: str, encode: Encode) -> None:
        """Subscribers connected with ``transport`` get events encoded by ``encode`` (once
        per event for all of them): Server-Sent Events next to the WebSocket's frames."""
        self._encoders[transport] = encode

    def add_listener(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` for every event; returns a function that removes it."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    # -- connections ------------------------------------------------------------------

    @property
    def connections(self) -> int:
        return len(self._subscribers)

    def statistics(self) -> HubStatistics:
        coalesced = self._coalesced_gone
        for subscriber in self._subscribers.values():
            coalesced += subscriber.statistics().coalesced
        return HubStatistics(
            connections=len(self._subscribers),
            watched_tasks=len(self._by_task),
            watched_users=len(self._by_user),
            published=self._published,
            coalesced=coalesced,
            dropped=self._dropped,
        )

    def subscribers(self) -> Sequence[Subscriber]:
        return tuple(self._subscribers.values())

    def watched_tasks(self) -> list[str]:
        """Tasks some connection here follows one by one (for cross-instance catch-up)."""
        return list(self._by_task)

    def watched_users(self) -> list[str]:
        """Users some connection here follows wholesale (``subscribe_tasks``)."""
        return list(self._by_user)

    def connect(self, connection_id: str, transport: str = "ws") -> Subscriber:
        subscriber = Subscriber(self, connection_id, self.queue_size, transport)
        self._subscribers[connection_id] = subscriber
        if self._closing is not None:
            subscriber.drop(DropReason.SHUTTING_DOWN, self._closing)
        return subscriber

    def close_all(self, message: str) -> None:
        """Drop every subscriber, and any that arrives from now on (the server is stopping).

        Why: a WebSocket never finishes on its own, so without this the server's graceful
        drain would wait its whole grace period, and clients would get no reason.
        """
        self._closing = message
        for subscriber in tuple(self._subscribers.values()):
            subscriber.drop(DropReason.SHUTTING_DOWN, message)

    def disconnect(self, subscriber: Subscriber) -> None:
        """Forget the subscriber and every subscription it holds (idempotent)."""
        if self._subscribers.pop(subscriber.connection_id, None) is None:
            return
        self._coalesced_gone += subscriber.statistics().coalesced
        if subscriber.dropped in (DropReason.TOO_SLOW, DropReason.TOKEN_EXPIRED):
            self._dropped += 1
        for video_id in tuple(subscriber.tasks):
            self._discard(self._by_task, video_id, subscriber)
        subscriber.tasks.clear()
        self.unsubscribe_user(subscriber)

    def authenticate(self, subscriber: Subscriber, user_id: str, expires_at_ms: int) -> None:
        subscriber.user_id = user_id
        subscriber.expires_at_ms = expires_at_ms

    @staticmethod
    def _discard(index: dict[str, set[Subscriber]], key: str, subscriber: Subscriber) -> None:
        members = index.get(key)
        if members is not None:
            members.discard(subscriber)
            if not members:
                del index[key]

    # -- subscriptions ----------------------------------------------------------------

    def subscribe_task(self, subscriber: Subscriber, video_id: str) -> None:
        """Start receiving the task's events, held back until `release` (after the snapshot)."""
        if subscriber.closed:
            return
        subscriber.tasks.add(video_id)
        subscriber.hold(video_id)
        self._by_task.setdefault(video_id, set()).add(subscriber)

    def release(self, subscriber: Subscriber, video_id: str, snapshot_seq: int) -> None:
        """The client has the snapshot at ``snapshot_seq``: deliver what came after it."""
        subscriber.release(video_id, snapshot_seq)

    def unsubscribe_task(self, subscriber: Subscriber, video_id: str) -> None:
        subscriber.tasks.discard(video_id)
        subscriber.forget(video_id)
        self._discard(self._by_task, video_id, subscriber)

    def subscribe_user(self, subscriber: Subscriber) -> None:
        """Every event of the subscriber's user's tasks, including tasks created later."""
        if subscriber.user_id is None or subscriber.closed:
            raise ValueError("subscribe_user needs an authenticated subscriber")
        subscriber.all_tasks = True
        self._by_user.setdefault(subscriber.user_id, set()).add(subscriber)

    def unsubscribe_user(self, subscriber: Subscriber) -> None:
        subscriber.all_tasks = False
        if subscriber.user_id is not None:
            self._discard(self._by_user, subscriber.user_id, subscriber)

    # -- delivery ---------------------------------------------------------------------

    def publish(self, event: TaskEvent) -> None:
        """Hand the event to its subscribers; never blocks and never raises into the actor."""
        for listener in tuple(self._listeners):
            listener(event)
        task = event.task
        by_task = self._by_task.get(task.video_id)
        by_user = self._by_user.get(task.user_id)
        if not by_task and not by_user:
            return
        encoded: dict[str, Frames | None] = {}  # per transport, made once when first needed
        targets = by_task | by_user if by_task and by_user else by_task or by_user or set()
        for subscriber in tuple(targets):  # a copy: an overflowing subscriber leaves the sets
            transport = subscriber.transport
            if transport not in encoded:
                encoded[transport] = self._encoded(event, transport)
            frames = encoded[transport]
            if frames is not None:
                subscriber.offer(task.video_id, task.seq, task.terminal, frames)
        if any(frames is not None for frames in encoded.values()):
            self._published += 1

    def _encoded(self, event: TaskEvent, transport: str) -> Frames | None:
        encode = self._encoders.get(transport)
        if encode is None:
            log.warning("event for %s dropped: no %s encoder", event.task.video_id, transport)
            return None
        try:
            return encode(event)
        except Exception:
            log.exception("could not encode the event of task %s", event.task.video_id)
            return None

    def sweep(self) -> None:
        """Drop subscribers stuck past ``stuck_seconds`` or whose token has expired."""
        now, wall = trio.current_time(), wall_ms()
        for subscriber in tuple(self._subscribers.values()):
            if subscriber.stalled_for(now) > self.stuck_seconds:
                subscriber.drop(DropReason.TOO_SLOW, "too slow: nothing could be sent for too long")
            elif subscriber.expires_at_ms is not None and wall >= subscriber.expires_at_ms:
                subscriber.drop(DropReason.TOKEN_EXPIRED, "the token has expired; log in again")

    async def run(self) -> NoReturn:
        """Sweep periodically until cancelled (the runtime starts this)."""
        while True:
            await trio.sleep(min(1.0, self.stuck_seconds / 4))
            self.sweep()
