"""The relay: events of tasks whose actors run on other instances, delivered here.

Actors publish to their own instance's hub. For the others, every change also sends a
PostgreSQL notification ("task X reached seq N"); the relay re-reads such tasks and
publishes them to this hub, skipping what this hub has already seen. Notifications can be
missed (delivery is at most once, and none arrive while the listener reconnects), so the
relay also catches up: after each reconnection and every ``catchup_s`` it re-reads the tasks
and users that connections here follow, and publishes whatever moved on.

It also tells the supervisor when another instance ended a task whose actor runs here (a
cancel that arrived there), so the actor stops polling at once.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import NoReturn

import trio

from .clock import wall_ms
from .hub import Hub, TaskEvent
from .storage import Storage, Task
from .storage.notify import Notifications, parse
from .storage.tasks import tasks_by_ids, tasks_changed_since
from .supervisor import Supervisor

log = logging.getLogger("sora_actors.relay")


@dataclass(frozen=True, slots=True)
class RelayStatistics:
    relayed: int  # events published here for changes made on other instances
    pending: int  # notified tasks waiting to be re-read
    remembered: int  # tasks whose latest published seq is remembered (bounded)


class Relay:
    SEEN_LIMIT = 100_000

    def __init__(
        self, storage: Storage, hub: Hub, supervisor: Supervisor, *, catchup_s: float = 5.0
    ) -> None:
        self._storage = storage
        self._hub = hub
        self._supervisor = supervisor
        self._catchup_s = catchup_s
        self._seen: OrderedDict[str, int] = OrderedDict()  # video id -> highest seq published
        self._dirty: dict[str, int] = {}
        self._wakeup = trio.Event()
        self._catchup_now = trio.Event()
        self._last_catchup = wall_ms()
        self._relayed = 0
        hub.add_listener(self._note)

    def statistics(self) -> RelayStatistics:
        return RelayStatistics(
            relayed=self._relayed, pending=len(self._dirty), remembered=len(self._seen)
        )

    def _note(self, event: TaskEvent) -> None:
        task = event.task
        if task.seq > self._seen.get(task.video_id, 0):
            self._seen[task.video_id] = task.seq
            self._seen.move_to_end(task.video_id)
            while len(self._seen) > self.SEEN_LIMIT:
                self._seen.popitem(last=False)

    def _on_payload(self, payload: str) -> None:
        parsed = parse(payload)
        if parsed is None:
            return
        video_id, seq, _user = parsed
        if seq > max(self._seen.get(video_id, 0), self._dirty.get(video_id, 0)):
            self._dirty[video_id] = seq
            self._wakeup.set()

    def _on_connected(self) -> None:
        self._catchup_now.set()

    async def run(self) -> NoReturn:
        """Relay until cancelled (on SQLite, one instance: nothing to relay, only wait)."""
        notifications = Notifications(self._storage.database)
        if not notifications.supported:
            await trio.sleep_forever()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(notifications.listen, self._on_payload, self._on_connected)
            nursery.start_soon(self._catchup_loop)
            await self._deliver_loop()

    async def _deliver_loop(self) -> NoReturn:
        while True:
            await self._wakeup.wait()
            self._wakeup = trio.Event()
            batch, self._dirty = self._dirty, {}
            try:
                self._publish(await tasks_by_ids(self._storage.database, list(batch)))
            except Exception:  # a database outage: the catch-up repairs it later
                log.exception("relaying %d notifications failed", len(batch))

    async def _catchup_loop(self) -> NoReturn:
        while True:
            with trio.move_on_after(self._catchup_s):
                await self._catchup_now.wait()
            self._catchup_now = trio.Event()
            since = self._last_catchup - int(self._catchup_s * 1000)
            self._last_catchup = wall_ms()
            try:
                tasks = await tasks_by_ids(self._storage.database, self._hub.watched_tasks())
                tasks += await tasks_changed_since(
                    self._storage.database, self._hub.watched_users(), since
                )
                self._publish(tasks)
            except Exception:
                log.exception("catch-up failed")

    def _publish(self, tasks: list[Task]) -> None:
        for task in sorted(tasks, key=lambda t: t.seq):
            if task.seq <= self._seen.get(task.video_id, 0):
                continue
            self._relayed += 1
            self._hub.publish(TaskEvent(task, None))
            if task.terminal:
                self._supervisor.ended_elsewhere(task.video_id)
