"""Units of work for the local copies of finished videos.

A completed task is terminal, so the task units (`tasks.py`) refuse to touch it; these units
change only the content columns of a COMPLETED task. Each still bumps ``seq``: the task's
representation (its URLs) changed, and listeners order events by ``seq``.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from ..clock import wall_ms
from ..lifecycle import Status
from .database import Database
from .records import ContentRecord, Task
from .tables import task_content, video_tasks

_T = video_tasks.c
_C = task_content.c


async def _record(conn: Any, record: ContentRecord) -> None:
    # Delete + insert rather than an upsert: the same statement on SQLite and PostgreSQL.
    await conn.execute(
        task_content.delete().where(_C.video_id == record.video_id, _C.variant == record.variant)
    )
    await conn.execute(
        task_content.insert().values(
            video_id=record.video_id,
            variant=record.variant,
            storage_key=record.storage_key,
            content_type=record.content_type,
            size_bytes=record.size_bytes,
            sha256=record.sha256,
            stored_at=record.stored_at,
        )
    )


async def _records(conn: Any, video_id: str) -> dict[str, ContentRecord]:
    rows = await conn.fetch_all(sa.select(task_content).where(_C.video_id == video_id))
    return {row["variant"]: ContentRecord.from_row(row) for row in rows}


async def _set_content(conn: Any, video_id: str, values: dict[str, Any]) -> Task | None:
    row = await conn.fetch_one(
        video_tasks.update()
        .where(
            _T.video_id == video_id,
            _T.status == Status.COMPLETED.value,
            _T.deleted_at.is_(None),  # a deleted task's copy is not restored
        )
        .values(**values, seq=_T.seq + 1, updated_at=wall_ms())
        .returning(*video_tasks.c)
    )
    return Task.from_row(row) if row is not None else None


async def _expire(conn: Any, video_id: str, at: int) -> Task | None:
    row = await conn.fetch_one(
        video_tasks.update()
        .where(
            _T.video_id == video_id,
            _T.status == Status.COMPLETED.value,
            _T.content_expired_at.is_(None),
        )
        .values(content_expired_at=at, seq=_T.seq + 1, updated_at=wall_ms())
        .returning(*video_tasks.c)
    )
    return Task.from_row(row) if row is not None else None


async def _due(conn: Any, stored_before: int, limit: int) -> list[Task]:
    rows = await conn.fetch_all(
        sa.select(video_tasks)
        .where(
            _T.content_stored_at.is_not(None),
            _T.content_expired_at.is_(None),
            _T.content_stored_at < stored_before,
        )
        .order_by(_T.content_stored_at)
        .limit(limit)
    )
    return [Task.from_row(row) for row in rows]


class ContentRecords:
    """What the database knows about local copies, as whole units of work."""

    def __init__(self, database: Database) -> None:
        self._db = database

    async def record(self, record: ContentRecord) -> None:
        """Note one stored variant (replacing an earlier record of the same variant)."""
        await self._db.run(_record, record)

    async def records(self, video_id: str) -> dict[str, ContentRecord]:
        """The stored variants of a task, by variant name."""
        return await self._db.read(_records, video_id)

    async def restore(self, video_id: str, variants: tuple[str, ...], at: int) -> Task | None:
        """A COMPLETED task has its copy again (fetched anew); None if it is not COMPLETED."""
        values = {
            "content_stored_at": at,
            "content_expired_at": None,
            "content_variants": " ".join(variants),
        }
        return await self._db.run(_set_content, video_id, values)

    async def expire(self, video_id: str, at: int) -> Task | None:
        """The copy is gone (retention, or lost and no longer upstream); None if already so."""
        return await self._db.run(_expire, video_id, at)

    async def due_for_removal(self, stored_before: int, limit: int = 500) -> list[Task]:
        """Tasks whose copy was stored before ``stored_before`` (ms) and is still kept."""
        return await self._db.read(_due, stored_before, limit)
