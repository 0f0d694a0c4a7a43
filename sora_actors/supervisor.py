"""The supervisor: starts, restarts and stops task actors (one-for-one, OTP style).

A crashed actor is restarted from the database with exponential backoff. More than
``max_restarts`` crashes within ``period_s`` (a sliding window) mark that task FAILED with
ACTOR_CRASH_LOOP instead of looping; other actors and the server never notice. A database
outage is not the actor's fault: it is retried with backoff and does not count.

With several instances, which tasks run here is decided by leases (`leases.py`): they tell
the supervisor which actors to start and to stop.

Commands reach an actor through its mailbox. When no actor runs for a task here (it has
ended, is between restarts, or belongs elsewhere) the task service ends it directly; its
conditional update (same ``seq``, not terminal) makes the race with an actor end in exactly
one terminal state either way.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from dataclasses import dataclass
from typing import NoReturn

import trio

from .backoff import STORAGE_OUTAGE
from .channels import ChannelSet, as_channels
from .leases import Leases
from .ledger import PollLedger
from .lifecycle import ErrorCode
from .storage import Activity, StaleTask, Storage, StorageUnavailable, Task, classify
from .task import (
    ActorConfig,
    Cancel,
    Command,
    LeaseLost,
    TaskActor,
    UpstreamHint,
    cancel_upstream,
)
from .task_service import CancelOutcome, TaskService
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


@dataclass(frozen=True, slots=True)
class SupervisorStatistics:
    running: int  # actors running in this process now
    crashes: int  # actor crashes since the start (each restarted or given up)


class Supervisor:
    """Owns the nursery every actor runs in, and each actor's mailbox."""

    MAILBOX_SIZE = 8
    OUTAGE_BACKOFF = STORAGE_OUTAGE

    def __init__(
        self,
        *,
        storage: Storage,
        provider: Provider | ChannelSet,
        tasks: TaskService,
        actor_config: ActorConfig,
        intensity: RestartIntensity | None = None,
        leases: Leases | None = None,
    ) -> None:
        self._storage = storage
        self.channels = as_channels(provider)
        self._tasks = tasks
        self._actor_config = actor_config
        self._intensity = intensity or RestartIntensity()
        self._mailboxes: dict[str, trio.MemorySendChannel[Command]] = {}
        self._scopes: dict[str, trio.CancelScope] = {}
        self._actors: dict[str, TaskActor] = {}
        self._leases = leases
        self._nursery: trio.Nursery | None = None
        self._crashes = 0
        self.ledger = PollLedger(storage)
        tasks.run_with(self)  # the tasks it accepts start here

    @property
    def owner(self) -> str | None:
        return self._leases.owner if self._leases else None

    def new_lease_until(self) -> int | None:
        """The lease expiry (wall ms) to store on a task this instance creates."""
        return self._leases.new_until() if self._leases else None

    def lease_ok(self, video_id: str) -> bool:
        """May the actor of ``video_id`` still act? (Always, without leases.)"""
        return self._leases is None or self._leases.ok(video_id)

    def statistics(self) -> SupervisorStatistics:
        return SupervisorStatistics(running=len(self._mailboxes), crashes=self._crashes)

    async def run(
        self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED
    ) -> NoReturn:
        """Resume every unfinished task this instance may own, report how many, then
        supervise (claiming, renewing) until cancelled; on the way out give leases back."""
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                nursery.start_soon(self.ledger.run)
                resumed = await self._resume()
                if resumed:
                    log.info("resumed %d unfinished tasks", resumed)
                if self._leases is not None:
                    nursery.start_soon(self._leases.run, self)
                task_status.started(resumed)
                await trio.sleep_forever()
        finally:
            if self._leases is not None:
                await self._leases.release()

    async def _resume(self) -> int:
        if self._leases is not None:
            return await self._leases.resume(self)
        unfinished = await self._storage.tasks.unfinished()
        for task in unfinished:
            self.start(task)
        return len(unfinished)

    def held(self) -> list[str]:
        """Tasks with an actor here (started, perhaps not yet running)."""
        return list(self._mailboxes)

    def active(self) -> list[str]:
        """Tasks whose actor is running here now."""
        return list(self._scopes)

    def ended_elsewhere(self, video_id: str) -> None:
        """Another instance ended this task (say, a cancel it received): stop our actor."""
        if video_id in self._scopes:
            log.info("task %s ended elsewhere: stopping its actor here", video_id)
            self.stop(video_id)

    def stop(self, video_id: str) -> None:
        """Stop the actor of ``video_id`` if one runs here; it may no longer act."""
        scope = self._scopes.get(video_id)
        if scope is not None:
            scope.cancel()
        if self._leases is not None:
            self._leases.forget(video_id)

    def start(self, task: Task) -> None:
        """Start an actor for ``task`` unless one is running already."""
        if self._nursery is None:
            raise RuntimeError("the supervisor is not running")
        if task.video_id in self._mailboxes or task.terminal:
            return
        if self._leases is not None and not self._leases.owns(task):
            return  # another instance runs it
        send, receive = trio.open_memory_channel[Command](self.MAILBOX_SIZE)
        self._mailboxes[task.video_id] = send
        self._nursery.start_soon(self._supervise, task, receive, name=f"actor {task.video_id}")

    async def _supervise(self, task: Task, mailbox: trio.MemoryReceiveChannel[Command]) -> None:
        video_id = task.video_id
        scope = self._scopes[video_id] = trio.CancelScope()
        try:
            with scope:
                await self._supervise_loop(video_id, task, mailbox)
        finally:
            del self._scopes[video_id]
            actor = self._actors.pop(video_id, None)
            if actor is not None and actor.task.external_video_id is not None:
                self.channels.get(actor.task.channel).forget(actor.task.external_video_id)
            if self._actor_config.content is not None:
                self._actor_config.content.forget(video_id)
            if self._leases is not None:
                self._leases.forget(video_id)
            del self._mailboxes[video_id]
            # Commands that arrived too late get their reply channel closed, so that their
            # senders fall back to the database path instead of waiting forever.
            while True:
                try:
                    late = mailbox.receive_nowait()
                except (trio.WouldBlock, trio.EndOfChannel):
                    break
                if isinstance(late, Cancel):
                    late.reply.close()
            mailbox.close()

    async def _supervise_loop(
        self,
        video_id: str,
        current: Task | None,
        mailbox: trio.MemoryReceiveChannel[Command],
    ) -> None:
        crashes: deque[float] = deque()
        outages = 0
        while True:
            try:
                if current is None:
                    current = await self._storage.tasks.get(video_id)
                if current is None or current.terminal:
                    return
                if self._leases is not None and current.owner != self._leases.owner:
                    return  # adopted by another instance meanwhile
                actor = self._actors[video_id] = TaskActor(
                    current,
                    storage=self._storage,
                    provider=self.channels,
                    tasks=self._tasks,
                    config=self._actor_config,
                    mailbox=mailbox,
                    ledger=self.ledger,
                    lease_ok=lambda: self.lease_ok(video_id),
                )
                await actor.run()
                return
            except LeaseLost:
                log.warning("task %s: lease lost; its actor stops here", video_id)
                return
            except StaleTask:
                current = None  # changed elsewhere (a cancel, say): reload and carry on
                continue
            except StorageUnavailable as error:
                # Not the actor's fault (unavailable, or full): wait for the database without
                # counting a crash.
                outages += 1
                delay = self.OUTAGE_BACKOFF.delay(outages)
                log.warning(
                    "task %s: storage %s (%s); retrying in %.0f s",
                    video_id,
                    classify(error),
                    error,
                    delay,
                )
                current = None
                await trio.sleep(delay)
                continue
            except Exception:
                self._crashes += 1
                log.exception("actor for task %s crashed", video_id)
            now = trio.current_time()
            crashes.append(now)
            while crashes and crashes[0] <= now - self._intensity.period_s:
                crashes.popleft()
            if len(crashes) > self._intensity.max_restarts:
                try:
                    await self._give_up(video_id)
                except Exception:  # the next start (or another instance) tries again
                    log.exception("could not mark task %s failed", video_id)
                return
            await trio.sleep(self._intensity.backoff(len(crashes)))
            current = None

    async def _give_up(self, video_id: str) -> None:
        log.error("task %s crashed too often; marking it failed", video_id)
        await self._tasks.fail_unowned(
            video_id, ErrorCode.ACTOR_CRASH_LOOP, "the task's actor kept crashing; it was stopped"
        )

    def hint(self, video_id: str, hint: UpstreamHint) -> bool:
        """Hand a webhook's news to the task's actor if it runs here; False when none does
        (or its mailbox is full): a hint may be dropped, polling still finds the end."""
        mailbox = self._mailboxes.get(video_id)
        if mailbox is None:
            return False
        try:
            mailbox.send_nowait(hint)
        except (trio.WouldBlock, trio.BrokenResourceError, trio.ClosedResourceError):
            return False
        return True

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
                    pass  # the actor crashed or stopped while handling it: fall through
        outcome = await self._tasks.cancel_unowned(video_id, reason)
        if outcome is not None and outcome.cancelled:
            self.stop(video_id)  # an actor still busy here must not act on it any more
            await cancel_upstream(self.channels, outcome.task)
        return outcome
