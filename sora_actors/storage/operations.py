"""Units of work for the operators' views: the activity log, a page at a time, and the
service's statistics, computed together so that their figures agree with each other."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from ..lifecycle import TERMINAL_STATUSES, Status
from .database import Database
from .licences import Licence, LicenceState
from .tables import activity_log, users

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
STAT_DAYS = 30
LICENCE_STATES = tuple(state.lower() for state in LicenceState.ALL)


@dataclass(frozen=True, slots=True)
class LogQuery:
    """Which activity entries to list (all filters optional), newest first."""

    action: str | None = None
    user_id: str | None = None
    since: int | None = None  # wall ms, inclusive
    until: int | None = None  # wall ms, inclusive
    page: int = 1
    page_size: int = 20


@dataclass(frozen=True, slots=True)
class LogEntry:
    id: str
    user_id: str | None
    username: str | None
    action: str
    details: Any
    ip: str | None
    user_agent: str | None
    created_at: int


def _details(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text  # written by something older: shown as it is


async def _log_page(conn: Any, query: LogQuery) -> tuple[list[LogEntry], int]:
    log = activity_log.c
    where = []
    if query.action is not None:
        where.append(log.action == query.action)
    if query.user_id is not None:
        where.append(log.user_id == query.user_id)
    if query.since is not None:
        where.append(log.created_at >= query.since)
    if query.until is not None:
        where.append(log.created_at <= query.until)
    total = int(
        await conn.fetch_val(sa.select(sa.func.count()).select_from(activity_log).where(*where))
    )
    rows = await conn.fetch_all(
        sa.select(activity_log, users.c.username)
        .select_from(activity_log.outerjoin(users, users.c.id == log.user_id))
        .where(*where)
        .order_by(log.created_at.desc(), log.id.desc())
        .limit(query.page_size)
        .offset((query.page - 1) * query.page_size)
    )
    entries = [
        LogEntry(
            id=row["id"],
            user_id=row["user_id"],
            username=row["username"],
            action=row["action"],
            details=_details(row["details"]),
            ip=row["ip"],
            user_agent=row["user_agent"],
            created_at=row["created_at"],
        )
        for row in rows
    ]
    return entries, total


# -- statistics ----------------------------------------------------------------------------


def _day_series(counts: dict[int, dict[str, int]], first_day: int, fields: tuple[str, ...]) -> Any:
    """One entry per UTC day (oldest first, days without rows as zeros): ``{date, <fields>}``
    with ``date`` as YYYY-MM-DD."""
    return [
        {
            "date": datetime.fromtimestamp(day * 86_400, tz=UTC).date().isoformat(),
            **{name: counts.get(day, {}).get(name, 0) for name in fields},
        }
        for day in range(first_day, first_day + STAT_DAYS)
    ]


async def _user_figures(conn: Any, now: int, first_day: int) -> dict[str, Any]:
    total = int(await conn.fetch_val("SELECT COUNT(*) FROM users"))
    # Active: logged in, or did anything the log records (created a task, say), lately.
    active_sql = (
        "SELECT COUNT(*) FROM users WHERE last_login >= :since OR id IN "
        "(SELECT user_id FROM activity_log WHERE created_at >= :since AND user_id IS NOT NULL)"
    )
    active_24h = int(await conn.fetch_val(active_sql, {"since": now - 24 * HOUR_MS}))
    active_7d = int(await conn.fetch_val(active_sql, {"since": now - 7 * DAY_MS}))
    rows = await conn.fetch_all(
        "SELECT created_at / :day AS day, COUNT(*) AS n FROM users "
        "WHERE created_at >= :since GROUP BY created_at / :day",
        {"day": DAY_MS, "since": first_day * DAY_MS},
    )
    per_day = {int(row["day"]): {"count": int(row["n"])} for row in rows}
    return {
        "total": total,
        "active24h": active_24h,
        "active7d": active_7d,
        "newPerDay": _day_series(per_day, first_day, ("count",)),
    }


async def _task_figures(conn: Any, first_day: int) -> dict[str, Any]:
    """Tasks by status and per day, and the upstream's share: jobs it took (a task holding
    an upstream id) and how many of the finished ones failed. One scan for both totals."""
    rows = await conn.fetch_all(
        "SELECT status, COUNT(*) AS n, COUNT(external_video_id) AS jobs "
        "FROM video_tasks GROUP BY status"
    )
    by_status = {status.value: 0 for status in Status}
    jobs_by_status: dict[str, int] = {}
    for row in rows:
        by_status[row["status"]] = int(row["n"])
        jobs_by_status[row["status"]] = int(row["jobs"])
    rows = await conn.fetch_all(
        "SELECT created_at / :day AS day, status, COUNT(*) AS n FROM video_tasks "
        "WHERE created_at >= :since GROUP BY created_at / :day, status",
        {"day": DAY_MS, "since": first_day * DAY_MS},
    )
    per_day: dict[int, dict[str, int]] = {}
    for row in rows:
        bucket = per_day.setdefault(int(row["day"]), {"created": 0})
        bucket["created"] += int(row["n"])
        bucket[row["status"].lower()] = bucket.get(row["status"].lower(), 0) + int(row["n"])
    fields = ("created", *(status.value.lower() for status in Status))
    finished = sum(n for status, n in jobs_by_status.items() if status in TERMINAL_STATUSES)
    failed = jobs_by_status.get(Status.FAILED.value, 0)
    tasks = {
        "total": sum(by_status.values()),
        "byStatus": by_status,
        "perDay": _day_series(per_day, first_day, fields),
    }
    upstream = {
        "jobs": sum(jobs_by_status.values()),
        "finished": finished,
        "failed": failed,
        "failureRate": round(failed / finished, 4) if finished else 0.0,
    }
    return {"tasks": tasks, "upstream": upstream}


async def _video_figures(conn: Any) -> dict[str, Any]:
    """Copies held in the content store now (see `copies.py`): tasks and their bytes."""
    row = await conn.fetch_one(
        "SELECT COUNT(DISTINCT t.video_id) AS videos, COALESCE(SUM(c.size_bytes), 0) AS bytes "
        "FROM video_tasks t JOIN task_content c ON c.video_id = t.video_id "
        "WHERE t.content_stored_at IS NOT NULL AND t.content_expired_at IS NULL"
    )
    return {"stored": int(row["videos"]), "bytes": int(row["bytes"])}


async def _licence_figures(conn: Any, now: int) -> dict[str, Any]:
    """Licences by type and by state (the state as `Licence.state` decides it)."""
    by_type: dict[str, int] = {}
    by_state = dict.fromkeys(LICENCE_STATES, 0)
    by_type_state: dict[str, dict[str, int]] = {}
    for row in await conn.fetch_all("SELECT * FROM licenses"):
        kind, state = str(row["type"]), Licence.from_row(row).state(now).lower()
        by_type[kind] = by_type.get(kind, 0) + 1
        by_state[state] += 1
        cell = by_type_state.setdefault(kind, dict.fromkeys(LICENCE_STATES, 0))
        cell[state] += 1
    return {
        "total": sum(by_type.values()),
        "byType": by_type,
        "byState": by_state,
        "byTypeAndState": by_type_state,
    }


async def _statistics(conn: Any, now: int, dialect: str) -> dict[str, Any]:
    if dialect == "postgresql":
        # One snapshot for every figure (SQLite's transaction reads one snapshot anyway).
        await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
    first_day = now // DAY_MS - (STAT_DAYS - 1)
    return {
        "users": await _user_figures(conn, now, first_day),
        **await _task_figures(conn, first_day),
        "videos": await _video_figures(conn),
        "licenses": await _licence_figures(conn, now),
    }


class OperationsStore:
    """What operators read: the activity log and the statistics, as whole units of work."""

    def __init__(self, database: Database) -> None:
        self._db = database

    async def log_page(self, query: LogQuery) -> tuple[list[LogEntry], int]:
        """One page of the activity log and how many entries match in all."""
        return await self._db.run(_log_page, query)

    async def statistics(self, now: int) -> dict[str, Any]:
        """Users, tasks, upstream jobs, stored videos and licences, in one unit of work.

        Per-day series cover the last 30 UTC days, oldest first.
        """
        return await self._db.run(_statistics, now, self._db.dialect)
