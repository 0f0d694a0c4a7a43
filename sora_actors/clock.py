"""Wall-clock helpers. Stored times are Unix milliseconds; REST shows them as ISO 8601 UTC.

Schedules (polling, leases, heartbeats) never use these: they sleep on Trio's clock, so tests
can drive them in virtual time.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime


def wall_ms() -> int:
    """Milliseconds since the Unix epoch, now."""
    return time.time_ns() // 1_000_000


def iso(ms: int | None) -> str | None:
    """ISO 8601 UTC with milliseconds and a Z, or None."""
    if ms is None:
        return None
    moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
