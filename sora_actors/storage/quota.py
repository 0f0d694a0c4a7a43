"""What a user has used of their plan, and the check that admits a new task.

The check runs inside the unit of work that inserts the task, after `serialise`: counting
and inserting are one step for a user, so N limits admit exactly N however many creates
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


async def _running(conn: Any, user_id: str) -> int:
    query = sa.select(sa.func.count()).where(
        _T.user_id == user_id, _T.status.in_(UNFINISHED_STATUSES)
    )
    return int(await conn.fetch_val(query))


async def _created_since(conn: Any, user_id: str, since: int) -> int:
    query = sa.select(sa.func.count()).where(_T.user_id == user_id, _T.created_at > since)
    return int(await conn.fetch_val(query))


async def usage(conn: Any, user_id: str, now: int) -> Usage:
    return Usage(
        running=await _running(conn, user_id),
        day=await _created_since(conn, user_id, now - DAY_MS),
        thirty_days=await _created_since(conn, user_id, now - THIRTY_DAYS_MS),
    )


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


async def enforce(conn: Any, user_id: str, quota: Quota, now: int) -> None:
    """QuotaExceeded when one more task would go beyond ``quota`` (the longest wait wins:
    waiting less would not help)."""
    refusals: list[QuotaExceeded] = []
    if quota.running:
        used = await _running(conn, user_id)
        if used >= quota.running:
            refusals.append(QuotaExceeded("running", quota.running, used, RUNNING_RETRY_SECONDS))
    for window, span, limit in (
        ("24h", DAY_MS, quota.day),
        ("30d", THIRTY_DAYS_MS, quota.thirty_days),
    ):
        if limit:
            used = await _created_since(conn, user_id, now - span)
            if used >= limit:
                wait = await _window_wait(conn, user_id, now, span, limit, used)
                refusals.append(QuotaExceeded(window, limit, used, wait))
    if refusals:
        raise max(refusals, key=lambda refusal: refusal.retry_after)
