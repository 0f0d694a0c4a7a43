"""Task ownership by lease: which instance may run a task's actor, and until when.

An instance claims unowned or expired unfinished tasks in batches (PostgreSQL:
``FOR UPDATE SKIP LOCKED``, so instances claiming at once take disjoint sets), renews the
leases of the actors it runs well before they expire, and releases them when it stops.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from ..lifecycle import UNFINISHED_STATUSES
from .database import Database
from .records import UNFINISHED_SQL, Task
from .tables import video_tasks

_T = video_tasks.c
_RENEW_CHUNK = 500

_CLAIM = """
UPDATE video_tasks SET owner = :owner, lease_expires_at = :until
WHERE video_id IN (
    SELECT video_id FROM video_tasks
    WHERE status IN ({unfinished})
      AND (owner IS NULL OR lease_expires_at IS NULL OR lease_expires_at < :now {mine})
    ORDER BY created_at
    LIMIT :limit
    {lock}
)
RETURNING *
"""


async def _claim(
    conn: Any, dialect: str, owner: str, now: int, until: int, limit: int, mine: bool
) -> list[Task]:
    sql = _CLAIM.format(
        lock="FOR UPDATE SKIP LOCKED" if dialect == "postgresql" else "",
        mine="OR owner = :owner" if mine else "",
        unfinished=UNFINISHED_SQL,
    )
    rows = await conn.fetch_all(sql, {"owner": owner, "now": now, "until": until, "limit": limit})
    return sorted((Task.from_row(row) for row in rows), key=lambda task: task.created_at)


async def _renew(conn: Any, owner: str, video_ids: list[str], until: int) -> set[str]:
    kept: set[str] = set()
    for start in range(0, len(video_ids), _RENEW_CHUNK):
        chunk = video_ids[start : start + _RENEW_CHUNK]
        rows = await conn.fetch_all(
            video_tasks.update()
            .where(
                _T.owner == owner,
                _T.video_id.in_(chunk),
                _T.status.in_(UNFINISHED_STATUSES),
            )
            .values(lease_expires_at=until)
            .returning(_T.video_id)
        )
        kept.update(row["video_id"] for row in rows)
    return kept


async def _release(conn: Any, owner: str, video_ids: list[str] | None) -> None:
    where = [_T.owner == owner]
    if video_ids is not None:
        where.append(_T.video_id.in_(video_ids))
    await conn.execute(video_tasks.update().where(*where).values(owner=None, lease_expires_at=None))


class LeaseStore:
    """Units of work for task leases. Times are wall-clock Unix milliseconds."""

    def __init__(self, database: Database) -> None:
        self._db = database

    async def claim(
        self, owner: str, *, now: int, until: int, limit: int, include_own: bool = False
    ) -> list[Task]:
        """Take up to ``limit`` unfinished tasks nobody holds (or whose lease ran out).

        ``include_own`` also takes tasks this owner's id still holds: right after a restart
        of the same instance, or on SQLite, where only one process may exist at all.
        """
        return await self._db.run(_claim, self._db.dialect, owner, now, until, limit, include_own)

    async def renew(self, owner: str, video_ids: list[str], *, until: int) -> set[str]:
        """Extend these leases; returns the ids this owner still holds."""
        if not video_ids:
            return set()
        return await self._db.run(_renew, owner, video_ids, until)

    async def release(self, owner: str, video_ids: list[str] | None = None) -> None:
        """Give leases back (all of this owner's when ``video_ids`` is None)."""
        await self._db.run(_release, owner, video_ids)

    async def holder(self, video_id: str) -> tuple[str | None, int | None]:
        async def read(conn: Any) -> tuple[str | None, int | None]:
            row = await conn.fetch_one(
                sa.select(_T.owner, _T.lease_expires_at).where(_T.video_id == video_id)
            )
            return (row["owner"], row["lease_expires_at"]) if row else (None, None)

        return await self._db.read(read)
