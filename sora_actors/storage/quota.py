"""What a user has used of their plan, and the check that admits a new task.

The check runs inside the unit of work that inserts the task, after `serialise`: counting
(one statement, with the user's licences: `licences.standing_of`) and inserting are one
step for a user, so N limits admit exactly N however many creates
race. SQLite runs units one at a time (one connection, `database._AioEngine.unit`);
PostgreSQL takes a transaction-scoped advisory lock per user, held until the commit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from ..lifecycle import UNFINISHED_STATUSES
from .tables import video_tasks

_T = video_tasks.c
DAY_MS = 86_400_000
THIRTY_DAYS_MS = 30 * DAY_MS
# Waiting for a running task to end: no telling when; ask again in this many seconds.
RUNNING_RETRY_SECONDS = 10
# The advisory lock's first key (the second is the user id's hash): a space of our own.
_PG_USER_LOCK = 5005


@dataclass(frozen=True, slots=True)
class Quota:
    """The counts a plan allows; 0: no limit."""

    running: int = 0
    day: int = 0
    thirty_days: int = 0


@dataclass(frozen=True, slots=True)
class Usage:
    running: int
    day: int  # created in the last 24 hours
    thirty_days: int  # created in the last 30 days


class QuotaExceeded(Exception):
    """A limit of the plan is reached; ``window``: running, 24h or 30d."""

    def __init__(self, window: str, limit: int, used: int, retry_after: int) -> None:
        super().__init__(f"{window} limit of {limit} reached")
        self.window = window
        self.limit = limit
        self.used = used
        self.retry_after = retry_after


async def serialise(conn: Any, user_id: str, postgres: bool) -> None:
    """Make this user's units that count and insert run one after another (until commit)."""
    if postgres:
        await conn.execute(
            "SELECT pg_advisory_xact_lock(:space, hashtext(:user_id))",
            {"space": _PG_USER_LOCK, "user_id": user_id},
        )


def counts(user_id: str, now: int) -> Any:
    """The three counts as one row (running, day, month): a query others select from."""

    def count(*where: Any) -> Any:
        return sa.select(sa.func.count()).where(_T.user_id == user_id, *where).scalar_subquery()

    return sa.select(
        count(_T.status.in_(UNFINISHED_STATUSES)).label("running"),
        count(_T.created_at > now - DAY_MS).label("day"),
        count(_T.created_at > now - THIRTY_DAYS_MS).label("month"),
    )


def usage_of(row: Any) -> Usage:
    return Usage(running=int(row["running"]), day=int(row["day"]), thirty_days=int(row["month"]))


async def _window_wait(conn: Any, user_id: str, now: int, span: int, limit: int, used: int) -> int:
    """Seconds until enough of the counted tasks leave the window to admit one more."""
    # The (used - limit + 1)-th oldest task in the window has to leave it.
    oldest = await conn.fetch_val(
        sa.select(_T.created_at)
        .where(_T.user_id == user_id, _T.created_at > now - span)
        .order_by(_T.created_at)
        .limit(1)
        .offset(used - limit)
    )
    return max(1, math.ceil((int(oldest) + span - now) / 1000))


def exceeded(quota: Quota, used: Usage) -> list[QuotaExceeded]:
    """The limits of ``quota`` one more task would go beyond (their waits still unknown)."""
    return [
        QuotaExceeded(window, limit, count, RUNNING_RETRY_SECONDS)
        for window, limit, count in (
            ("running", quota.running, used.running),
            ("24h", quota.day, used.day),
            ("30d", quota.thirty_days, used.thirty_days),
        )
        if limit and count >= limit
    ]


async def refuse(conn: Any, user_id: str, refusals: list[QuotaExceeded], now: int) -> None:
    """Raise the refusal with the longest wait (waiting less would not help); a window's
    wait is until enough of its counted tasks have left it."""
    spans = {"24h": DAY_MS, "30d": THIRTY_DAYS_MS}
    for refusal in refusals:
        span = spans.get(refusal.window)
        if span is not None:
            refusal.retry_after = await _window_wait(
                conn, user_id, now, span, refusal.limit, refusal.used
            )
    raise max(refusals, key=lambda refusal: refusal.retry_after)
