"""The supervisor: starts, restarts and stops task actors (one-for-one, OTP style).

A crashed actor is restarted from the database with exponential backoff. More than
``max_restarts`` crashes within ``period_s`` (a sliding window) mark that task FAILED with
ACTOR_CRASH_LOOP instead of looping; other actors and the server never notice. A database
outage is not the actor's fault: it is retried with backoff and does not count.

Commands reach an actor through its mailbox. When no actor runs for a task here (it has
ended, is between restarts, or belongs elsewhere) a cancel is applied to the database
directly; the conditional update (same ``seq``, not terminal) makes the race with an actor
end in exactly one terminal state either way.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from dataclasses import dataclass

import trio

from .clock import wall_ms
from .hub import Hub, TaskEvent
from .ledger import PollLedger
from .lifecycle import ErrorCode, Phase, transition
from .storage import Activity, StaleTask, Storage, StorageUnavailable, Task
from .task import ActorConfig, Cancel, CancelOutcome, Command, TaskActor
from .upstream import Provider

log = logging.getLogger("sora_actors.supervisor")


@dataclass(frozen=True)
class RestartIntensity:
    max_restarts: int = 5
    period_s: float = 60.0
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0

    def backoff(self, attempt: int) -> float:
        return min(self.backoff_max_s, math.ldexp(self.backoff_base_s, attempt - 1))


class Supervisor:
    """Owns the nursery every actor runs in, and each actor's mailbox."""

    MAILBOX_SIZE = 8
    CANCEL_ATTEMPTS = 5

    def __init__(
        self,
        *,
        storage: Storage,
        provider: Provider,
        hub: Hub,
        actor_config: ActorConfig,
        intensity: RestartIntensity | None = None,
    ) -> None:
        self._storage = storage
        self._provider = provider
        self._hub = hub
        self._actor_config = actor_config
        self._intensity = intensity or RestartIntensity()
        self._mailboxes: dict[str, trio.MemorySendChannel[Command]] = {}
        self._nursery: trio.Nursery | None = None
        self.crashes = 0  # total, for metrics and tests
        self.ledger = PollLedger(storage)

    @property
    def running(self) -> int:
        return len(self._mailboxes)

    def is_running(self, video_id: str) -> bool:
        return video_id in self._mailboxes

    async def run(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        """Resume every unfinished task, report how many, then supervise until cancelled."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            nursery.start_soon(self.ledger.run)
            unfinished = await self._storage.tasks.unfinished()
            for task in unfinished:
                self.start(task)
            if unfinished:
                log.info("resumed %d unfinished tasks", len(unfinished))
            task_status.started(len(unfinished))
            await trio.sleep_forever()

    def start(self, task: Task) -> None:
        """Start an actor for ``task`` unless one is running already."""
        if self._nursery is None:
            raise RuntimeError("the supervisor is not running")
        if task.video_id in self._mailboxes or task.terminal:
            return
        send, receive = trio.open_memory_channel[Command](self.MAILBOX_SIZE)
        self._mailboxes[task.video_id] = send
        self._nursery.start_soon(self._supervise, task, receive, name=f"actor {task.video_id}")

    async def _supervise(self, task: Task, mailbox: trio.MemoryReceiveChannel[Command]) -> None:
        video_id = task.video_id
        crashes: deque[float] = deque()
        current: Task | None = task
        try:
            while True:
                if current is None:
                    current = await self._storage.tasks.get(video_id)
                if current is None or current.terminal:
                    return
                actor = TaskActor(
                    current,
                    storage=self._storage,
                    provider=self._provider,
                    hub=self._hub,
                    config=self._actor_config,
                    mailbox=mailbox,
                    ledger=self.ledger,
                )
                try:
                    await actor.run()
                    return
                except StaleTask:
                    current = None  # changed elsewhere (a cancel, say): reload and carry on
                    continue
                except StorageUnavailable as error:
                    log.warning("task %s: database unavailable (%s); retrying", video_id, error)
                    current = None
                    await trio.sleep(self._intensity.backoff_max_s / 6)
                    continue
                except Exception:
                    self.crashes += 1
                    log.exception("actor for task %s crashed", video_id)
                now = trio.current_time()
                crashes.append(now)
                while crashes and crashes[0] <= now - self._intensity.period_s:
                    crashes.popleft()
                if len(crashes) > self._intensity.max_restarts:
                    await self._give_up(video_id)
                    return
                await trio.sleep(self._intensity.backoff(len(crashes)))
                current = None
        finally:
            del self._mailboxes[video_id]
            # Commands that arrived too late get their reply channel closed, so that their
            # senders fall back to the database path instead of waiting forever.
            while True:
                try:
                    mailbox.receive_nowait().reply.close()
                except (trio.WouldBlock, trio.EndOfChannel):
                    break
            mailbox.close()

    async def _give_up(self, video_id: str) -> None:
        log.error("task %s crashed too often; marking it failed", video_id)
        message = "the task's actor kept crashing; it was stopped"
        await self._end_in_database(
            video_id,
            Phase.FAILED,
            message,
            Activity("task_failed", None, {"videoId": video_id, "code": "ACTOR_CRASH_LOOP"}),
            error_code=ErrorCode.ACTOR_CRASH_LOOP.value,
            error_message=message,
        )

    async def _end_in_database(
        self,
        video_id: str,
        target: Phase,
        message: str,
        activity: Activity,
        **changes: object,
    ) -> CancelOutcome | None:
        """Move a task that no actor drives here to a terminal phase (CAS with retries)."""
        for _ in range(self.CANCEL_ATTEMPTS):
            task = await self._storage.tasks.get(video_id)
            if task is None:
                return None
            if task.terminal:
                return CancelOutcome(task, cancelled=False)
            try:
                ended = await self._storage.tasks.change(
                    task,
                    activity,
                    **transition(task.phase, target, completed_at=wall_ms(), **changes),
                )
            except StaleTask:
                continue
            self._hub.publish(TaskEvent(ended, message))
            return CancelOutcome(ended, cancelled=True)
        raise StaleTask(video_id)

    async def cancel(self, video_id: str, reason: Activity) -> CancelOutcome | None:
        """Cancel a task; None when it does not exist. Ends in exactly one terminal state."""
        mailbox = self._mailboxes.get(video_id)
        if mailbox is not None:
            reply_send, reply_receive = trio.open_memory_channel[CancelOutcome](1)
            try:
                await mailbox.send(Cancel(reason, reply_send))
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass  # the actor just ended: the database path below decides
            else:
                try:
                    return await reply_receive.receive()
                except trio.EndOfChannel:
                    pass  # the actor crashed while handling it: fall through
        return await self._end_in_database(video_id, Phase.CANCELLED, "cancelled", reason)
