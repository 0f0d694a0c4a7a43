"""When to try again: exponential backoff, optionally bounded by a deadline.

Used where a known condition is waited out rather than treated as a failure: a database
that is unavailable or full (the supervisor, the claim loop), and a finished video that
finds the content store full (its retries never run past the upstream's expiry).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    """``base_s`` before the first retry, doubling up to ``max_s``."""

    base_s: float
    max_s: float

    def delay(self, attempt: int) -> float:
        """The wait before retry number ``attempt`` (1-based)."""
        return min(self.max_s, math.ldexp(self.base_s, max(1, attempt) - 1))

    def delay_before(self, attempt: int, *, now: float, deadline: float) -> float | None:
        """`delay`, cut short so the retry lands no later than ``deadline`` (on the clock
        of ``now``); None when the deadline has come: no retry fits any more."""
        room = deadline - now
        if room <= 0:
            return None
        return min(self.delay(attempt), room)


# A database that is unavailable or full: retried after 5 s, doubling up to a minute.
STORAGE_OUTAGE = Backoff(5.0, 60.0)
