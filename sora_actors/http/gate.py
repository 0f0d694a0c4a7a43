"""Admission to expensive work (password hashing): a few at once, a short queue, then 503.

Why: a bcrypt hash costs ~210 ms of a core. Sixty concurrent registrations used to run in
sixty threads at once and starved everything else on the machine (an authenticated
``/api/auth/me`` took seconds). With at most one hash per core and a short queue, the
excess is refused at once with ``503 SERVER_BUSY`` and ``Retry-After``, and the rest of
the service keeps its share of the CPU.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio

from .envelope import ApiError

RETRY_AFTER_SECONDS = 1


def default_capacity() -> int:
    """One job per core this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


class BusyGate:
    """At most ``capacity`` jobs running and ``queue`` waiting; anything beyond is refused."""

    def __init__(self, capacity: int, queue: int) -> None:
        self._limiter = trio.CapacityLimiter(capacity)
        self._queue = queue
        self.waiting = 0

    @property
    def running(self) -> int:
        return self._limiter.borrowed_tokens

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one of the places for the body; 503 at once when none is free or queued."""
        try:
            self._limiter.acquire_nowait()
        except trio.WouldBlock:
            if self.waiting >= self._queue:
                raise ApiError(
                    503,
                    "SERVER_BUSY",
                    "The server is busy; try again in a moment.",
                    headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
                ) from None
            self.waiting += 1
            try:
                await self._limiter.acquire()
            finally:
                self.waiting -= 1
        try:
            yield
        finally:
            self._limiter.release()
