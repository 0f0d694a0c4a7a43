"""Client-side pacing for one upstream key: a Retry-After gate, a request rate cap and job slots.

One `Limiter` per (upstream, key). Several providers may share one instance so
that ten thousand actors together still respect the key's limits. All waiting
uses Trio's clock, so it runs unchanged under `trio.testing.MockClock`.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from types import TracebackType
from typing import Self

import trio


class JobSlot:
    """A reserved job slot; `commit(job_id)` hands it to the job, else it is returned."""

    __slots__ = ("_limiter", "job_id")

    def __init__(self, limiter: Limiter) -> None:
        self._limiter = limiter
        self.job_id: str | None = None

    def commit(self, job_id: str) -> None:
        """The create succeeded: the slot now belongs to `job_id` until it is seen terminal."""
        self.job_id = job_id


@dataclass(frozen=True, slots=True)
class LimiterStatistics:
    active_jobs: int  # jobs believed non-terminal upstream, plus creates in flight
    peak_jobs: int  # the most active at once since the start
    waiting_for_slot: int  # creates waiting for a job slot
    max_concurrent_jobs: int | None
    deferred_s: float  # seconds until requests may go out again (a Retry-After); 0 if open


class Limiter:
    """Per-key gate (nothing before Retry-After), request-rate cap and concurrent-job cap."""

    def __init__(
        self, max_requests_per_second: float | None = None, max_concurrent_jobs: int | None = None
    ) -> None:
        if max_requests_per_second is not None and max_requests_per_second <= 0:
            raise ValueError("max_requests_per_second must be positive")
        if max_concurrent_jobs is not None and max_concurrent_jobs < 1:
            raise ValueError("max_concurrent_jobs must be >= 1")
        self._interval = 0.0 if max_requests_per_second is None else 1.0 / max_requests_per_second
        self.max_concurrent_jobs = max_concurrent_jobs
        self._not_before = -math.inf
        self._next_slot = -math.inf
        self._jobs: set[str] = set()
        self._reserved = 0
        self._lot = trio.lowlevel.ParkingLot()
        self._peak_jobs = 0

    def statistics(self) -> LimiterStatistics:
        return LimiterStatistics(
            active_jobs=self.active_jobs,
            peak_jobs=self._peak_jobs,
            waiting_for_slot=self._lot.statistics().tasks_waiting,
            max_concurrent_jobs=self.max_concurrent_jobs,
            deferred_s=max(0.0, self._not_before - trio.current_time()),
        )

    # -- Retry-After gate ---------------------------------------------------
    def defer(self, seconds: float) -> None:
        """Honour a 429: nothing goes out on this key for `seconds` from now."""
        self._not_before = max(self._not_before, trio.current_time() + max(0.0, seconds))

    async def wait_turn(self) -> None:
        """Wait until a request may be sent: past the gate and within the rate."""
        while True:
            now = trio.current_time()
            if now < self._not_before:
                await trio.sleep_until(self._not_before)
                continue
            if self._interval:
                t = max(now, self._next_slot)
                self._next_slot = t + self._interval
                if t > now:
                    await trio.sleep_until(t)
                if trio.current_time() < self._not_before:
                    continue  # a 429 arrived while we waited for our slot
            return

    # -- concurrent jobs ----------------------------------------------------
    @property
    def active_jobs(self) -> int:
        """Jobs believed non-terminal upstream, plus creates in flight."""
        return len(self._jobs) + self._reserved

    @asynccontextmanager
    async def job_slot(self) -> AsyncIterator[JobSlot]:
        """Reserve a slot for a create (waiting for one); it is kept only if committed."""
        cap = self.max_concurrent_jobs
        while cap is not None and self.active_jobs >= cap:
            await self._lot.park()
        self._reserved += 1
        self._peak_jobs = max(self._peak_jobs, self.active_jobs)
        slot = JobSlot(self)
        try:
            yield slot
        finally:
            self._reserved -= 1
            if slot.job_id is not None:
                self._jobs.add(slot.job_id)
            else:
                self._lot.unpark()

    def job_seen(self, job_id: str, terminal: bool) -> None:
        """Record what get() observed: terminal frees the slot, non-terminal (re-)occupies it.

        A resumed job may push the count above the cap; new creates then wait.
        """
        if terminal:
            self.release(job_id)
        elif job_id not in self._jobs:
            self._jobs.add(job_id)
            self._peak_jobs = max(self._peak_jobs, self.active_jobs)

    def release(self, job_id: str) -> None:
        """Free the slot held by `job_id` (terminal, deleted or gone)."""
        if job_id in self._jobs:
            self._jobs.discard(job_id)
            self._lot.unpark()


class LimitedProvider:
    """What every provider behind a `Limiter` shares: its lifetime as an async context
    manager, and giving a job's slot back when nobody follows the job any more."""

    limiter: Limiter

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def forget(self, job_id: str) -> None:
        self.limiter.release(job_id)

    async def cancel(self, job_id: str) -> bool:
        """No cancel call in this dialect (the OpenAI Videos API has none): the job runs
        to its end upstream; False says nothing was sent."""
        return False

    async def aclose(self) -> None:
        """Nothing to release unless a subclass holds connections."""
