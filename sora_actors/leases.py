"""Leases: which tasks this instance may run, claimed, kept and given back in time.

Several instances share one PostgreSQL; each unfinished task is run by the instance that
holds its lease. This instance claims unowned or expired tasks in batches, renews the leases
of the actors it runs (heartbeat), and stops an actor whose lease may have run out
(watchdog), so that two instances never act on one task. The supervisor runs the actors;
these loops only tell it which to start and which to stop.
"""

from __future__ import annotations

import contextlib
import logging
import math
from dataclasses import dataclass
from typing import NoReturn, Protocol

import trio

from .backoff import STORAGE_OUTAGE, Backoff
from .clock import wall_ms
from .storage import Storage, StorageUnavailable, Task, classify

log = logging.getLogger("sora_actors.leases")


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


class Actors(Protocol):
    """The actors this instance runs (the supervisor), as leases see them."""

    def start(self, task: Task) -> None: ...

    def held(self) -> list[str]:
        """Tasks with an actor here (started, perhaps not yet running)."""
        ...

    def active(self) -> list[str]:
        """Tasks whose actor is running here now."""
        ...

    def stop(self, video_id: str) -> None: ...


class Leases:
    """The leases of one instance: claim, heartbeat and watchdog, and what actors may do."""

    def __init__(self, storage: Storage, config: LeaseConfig) -> None:
        self.config = config
        self._storage = storage
        # Trio time until which each running actor may act on its lease (minus a margin).
        self._leased_until: dict[str, float] = {}

    @property
    def owner(self) -> str:
        return self.config.owner

    def new_until(self) -> int:
        """The lease expiry (wall ms) to store on a task this instance creates."""
        return wall_ms() + int(self.config.lease_s * 1000)

    def ok(self, video_id: str) -> bool:
        """May the actor of ``video_id`` still act?"""
        if self.config.exclusive:
            return True  # the only process there can be: nobody else could adopt the task
        return trio.current_time() < self._leased_until.get(video_id, -math.inf)

    def owns(self, task: Task) -> bool:
        """Does this instance hold ``task``'s lease? If so its actor may start here."""
        if task.owner != self.config.owner:
            return False  # another instance runs it
        self._leased_until.setdefault(
            task.video_id, trio.current_time() + self.config.lease_s - self.config.margin_s
        )
        return True

    def forget(self, video_id: str) -> None:
        """The actor of ``video_id`` stopped here."""
        self._leased_until.pop(video_id, None)

    async def resume(self, actors: Actors) -> int:
        """Claim every task this instance may run at start (its own too); how many."""
        total = 0
        while True:
            claimed = await self._claim(actors, first=True)
            total += claimed
            if claimed < self.config.claim_batch:
                return total

    async def run(self, actors: Actors) -> NoReturn:
        """Claim what others left, and (shared tasks only) keep and watch our leases."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._claim_loop, actors)
            if not self.config.exclusive:  # only shared tasks need their leases kept
                nursery.start_soon(self._heartbeat_loop, actors)
                nursery.start_soon(self._watchdog_loop, actors)
            await trio.sleep_forever()

    async def release(self) -> None:
        """Hand the leases over now rather than make other instances wait them out."""
        with (
            trio.CancelScope(shield=True),
            trio.move_on_after(5),
            contextlib.suppress(StorageUnavailable),
        ):
            await self._storage.leases.release(self.config.owner)

    async def _claim(self, actors: Actors, *, first: bool = False) -> int:
        lease = self.config
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
            actors.start(task)
        return len(tasks)

    async def _claim_loop(self, actors: Actors) -> NoReturn:
        interval = self.config.claim_interval_s
        backoff = Backoff(interval, max(interval, STORAGE_OUTAGE.max_s))
        failures = 0
        while True:
            await trio.sleep(backoff.delay(failures + 1))
            try:
                while await self._claim(actors) == self.config.claim_batch:
                    pass
            except StorageUnavailable as error:  # unavailable or full: never fatal here
                failures += 1
                log.warning("claiming tasks failed (storage %s): %s", classify(error), error)
            else:
                failures = 0

    async def _heartbeat_loop(self, actors: Actors) -> NoReturn:
        lease = self.config
        while True:
            await trio.sleep(lease.heartbeat_s)
            held = actors.held()
            before = trio.current_time()
            try:
                kept = await self._storage.leases.renew(
                    lease.owner, held, until=wall_ms() + int(lease.lease_s * 1000)
                )
            except StorageUnavailable as error:
                log.warning("renewing leases failed: %s", error)
                continue
            active = set(actors.active())
            for video_id in held:
                if video_id in kept:
                    self._leased_until[video_id] = before + lease.lease_s - lease.margin_s
                elif video_id in active:
                    log.warning("lost the lease of task %s: stopping its actor", video_id)
                    actors.stop(video_id)

    async def _watchdog_loop(self, actors: Actors) -> NoReturn:
        """Stop actors whose lease may have run out (say the database stopped answering
        renewals, or this process was paused): another instance may adopt them."""
        while True:
            await trio.sleep(0.5)
            now = trio.current_time()
            for video_id in actors.active():
                if now >= self._leased_until.get(video_id, -math.inf):
                    log.warning("lease of task %s ran out here: stopping its actor", video_id)
                    actors.stop(video_id)
