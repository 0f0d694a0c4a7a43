"""The supervisor: starts, restarts and stops task actors (one-for-one, OTP style).

A crashed actor is restarted from the database with exponential backoff. More than
``max_restarts`` crashes within ``period_s`` (a sliding window) mark that task FAILED with
ACTOR_CRASH_LOOP instead of looping; other actors and the server never notice. A database
outage is not the actor's fault: it is retried with backoff and does not count.

Commands reach an actor through its mailbox. When no actor runs for a task here (it has
ended, is between restarts, or belongs elsewhere) the task service ends it directly; its
conditional update (same ``seq``, not terminal) makes the race with an actor end in exactly
one terminal state either way.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections import deque
from dataclasses import dataclass
from typing import NoReturn

import trio

from .backoff import Backoff
from .clock import wall_ms
from .ledger import PollLedger
from .lifecycle import ErrorCode
from .storage import Activity, StaleTask, Storage, StorageUnavailable, Task, classify
from .task import ActorConfig, Cancel, Command, LeaseLost, TaskActor
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


@dataclass(frozen=True)
class LeaseConfig:
    """Ownership by lease (several instances on one PostgreSQL).

    A dead instance's tasks are adopted within ``lease_s + claim_interval_s``.
    ``exclusive``: this process is the only one (SQLite): at start it takes every unfinished
    task, whoever held it before.
    """

    owner: str
    lease_s: float = 10.0
    heartbeat_s: float = 3.0
    claim_interval_s: float = 2.0
    claim_batch: int = 500
    exclusive: bool = False

    @property
    def margin_s(self) -> float:
        """An actor stops this long before its lease could run out, to never overlap."""
        return min(2.0, self.lease_s / 4)


@dataclass(frozen=True, slots=True)
class SupervisorStatistics:
    running: int  # actors running in this process now
    crashes: int  # actor crashes since the start (each restarted or given up)


class Supervisor:
    """Owns the nursery every actor runs in, and each actor's mailbox and lease."""

    MAILBOX_SIZE = 8
    # A database that is unavailable or full: retried after 5 s, doubling up to a minute.
    OUTAGE_BACKOFF = Backoff(5.0, 60.0)

    def __init__(
        self,
        *,
        storage: Storage,
        provider: Provider,
        tasks: TaskService,
        actor_config: ActorConfig,
        intensity: RestartIntensity | None = None,
        lease: LeaseConfig | None = None,
    ) -> None:
        self._storage = storage
        self._provider = provider
        self._tasks = tasks
        self._actor_config = actor_config
        self._intensity = intensity or RestartIntensity()
        self._mailboxes: dict[str, trio.MemorySendChannel[Command]] = {}
        self._scopes: dict[str, trio.CancelScope] = {}
        self._actors: dict[str, TaskActor] = {}
        # Trio time until which each running actor may act on its lease (minus a margin).
        self._leased_until: dict[str, float] = {}
        self._lease = lease
        self._nursery: trio.Nursery | None = None
        self._crashes = 0
        self.ledger = PollLedger(storage)
        tasks.run_with(self)  # the tasks it accepts start here

    @property
    def owner(self) -> str | None:
        return self._lease.owner if self._lease else None

    def new_lease_until(self) -> int | None:
        """The lease expiry (wall ms) to store on a task this instance creates."""
        return wall_ms() + int(self._lease.lease_s * 1000) if self._lease else None

    def lease_ok(self, video_id: str) -> bool:
        """May the actor of ``video_id`` still act? (Always, without leases.)"""
        if self._lease is None or self._lease.exclusive:
            return True  # the only process there can be: nobody else could adopt the task
        return trio.current_time() < self._leased_until.get(video_id, -math.inf)

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
                if self._lease is not None:
                    nursery.start_soon(self._claim_loop)
                    if not self._lease.exclusive:  # only shared tasks need their leases kept
                        nursery.start_soon(self._heartbeat_loop)
                        nursery.start_soon(self._watchdog_loop)
                task_status.started(resumed)
                await trio.sleep_forever()
        finally:
            if self._lease is not None:
                # Hand the leases over now rather than make other instances wait them out.
                with (
                    trio.CancelScope(shield=True),
                    trio.move_on_after(5),
                    contextlib.suppress(StorageUnavailable),
                ):
                    await self._storage.leases.release(self._lease.owner)

    async def _resume(self) -> int:
        if self._lease is None:
            unfinished = await self._storage.tasks.unfinished()
            for task in unfinished:
                self.start(task)
            return len(unfinished)
        total = 0
        while True:
            claimed = await self._claim(first=True)
            total += claimed
            if claimed < self._lease.claim_batch:
                return total

    async def _claim(self, *, first: bool = False) -> int:
        lease = self._lease
        assert lease is not None
        now = wall_ms()
        # Exclusive (SQLite): no other process can exist, so at start every lease is stale.
        horizon = 2**62 if (first and lease.exclusive) else now
        before = trio.current_time()
        tasks = await self._storage.leases.claim(
            lease.owner,
            now=horizon,
            until=now + int(lease.lease_s * 1000),
            limit=lease.claim_batch,
            include_own=first,
        )
        for task in tasks:
            self._leased_until[task.video_id] = before + lease.lease_s - lease.margin_s
            self.start(task)
        return len(tasks)

    async def _claim_loop(self) -> NoReturn:
        assert self._lease is not None
        interval = self._lease.claim_interval_s
        backoff = Backoff(interval, max(interval, self.OUTAGE_BACKOFF.max_s))
        failures = 0
        while True:
            await trio.sleep(backoff.delay(failures + 1))
            try:
                while await self._claim() == self._lease.claim_batch:
                    pass
            except StorageUnavailable as error:  # unavailable or full: never fatal here
                failures += 1
                log.warning("claiming tasks failed (storage %s): %s", classify(error), error)
            else:
                failures = 0

    async def _heartbeat_loop(self) -> NoReturn:
        lease = self._lease
        assert lease is not None
        while True:
            await trio.sleep(lease.heartbeat_s)
            held = list(self._mailboxes)
            before = trio.current_time()
            try:
                kept = await self._storage.leases.renew(
                    lease.owner, held, until=wall_ms() + int(lease.lease_s * 1000)
                )
            except StorageUnavailable as error:
                log.warning("renewing leases failed: %s", error)
                continue
            for video_id in held:
                if video_id in kept:
                    self._leased_until[video_id] = before + lease.lease_s - lease.margin_s
                elif video_id in self._scopes:
                    log.warning("lost the lease of task %s: stopping its actor", video_id)
                    self._stop(video_id)

    async def _watchdog_loop(self) -> NoReturn:
        """Stop actors whose lease may have run out (say the database stopped answering
        renewals, or this process was paused): another instance may adopt them."""
        while True:
            await trio.sleep(0.5)
            now = trio.current_time()
            for video_id in list(self._scopes):
                if now >= self._leased_until.get(video_id, -math.inf):
                    log.warning("lease of task %s ran out here: stopping its actor", video_id)
                    self._stop(video_id)

    def ended_elsewhere(self, video_id: str) -> None:
        """Another instance ended this task (say, a cancel it received): stop our actor."""
        if video_id in self._scopes:
            log.info("task %s ended elsewhere: stopping its actor here", video_id)
            self._stop(video_id)

    def _stop(self, video_id: str) -> None:
        scope = self._scopes.get(video_id)
        if scope is not None:
            scope.cancel()
        self._leased_until.pop(video_id, None)

    def start(self, task: Task) -> None:
        """Start an actor for ``task`` unless one is running already."""
        if self._nursery is None:
            raise RuntimeError("the supervisor is not running")
        if task.video_id in self._mailboxes or task.terminal:
            return
        if self._lease is not None:
            if task.owner != self._lease.owner:
                return  # another instance runs it
            self._leased_until.setdefault(
                task.video_id, trio.current_time() + self._lease.lease_s - self._lease.margin_s
            )
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
                self._provider.forget(actor.task.external_video_id)
            if self._actor_config.content is not None:
                self._actor_config.content.forget(video_id)
            self._leased_until.pop(video_id, None)
            del self._mailboxes[video_id]
            # Commands that arrived too late get their reply channel closed, so that their
            # senders fall back to the database path instead of waiting forever.
            while True:
                try:
                    mailbox.receive_nowait().reply.close()
                except (trio.WouldBlock, trio.EndOfChannel):
                    break
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
                if self._lease is not None and current.owner != self._lease.owner:
                    return  # adopted by another instance meanwhile
                actor = self._actors[video_id] = TaskActor(
                    current,
                    storage=self._storage,
                    provider=self._provider,
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
            self._stop(video_id)  # an actor still busy here must not act on it any more
        return outcome
