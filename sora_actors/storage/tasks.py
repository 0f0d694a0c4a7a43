"""Units of work for video tasks.

Every change to a task is one unit that bumps its ``seq`` and is conditional on the ``seq``
the caller last saw and on the task not being terminal yet: a stale writer (an actor that
lost its lease, a late duplicate) changes nothing, and a task ends in exactly one terminal
state.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from ..clock import wall_ms
from ..lifecycle import TERMINAL_STATUSES, UNFINISHED_STATUSES, Status
from .accounts import insert_activity
from .database import Database
from .errors import Conflict
from .licences import Licence, standing_of
from .notify import announce
from .quota import Quota, exceeded, refuse, serialise
from .records import UNFINISHED_SQL, Activity, NewTask, Task, TaskPage
from .tables import task_inputs, video_tasks

_T = video_tasks.c
# A plan's check for a new task: (the user's licences, now) -> what may be counted.
Gate = Callable[[Sequence[Licence], int], Quota]


class StaleTask(Conflict):
    """The task moved on (another seq) or already ended: the change was not applied."""

    def __init__(self, video_id: str) -> None:
        super().__init__("seq", f"task {video_id} changed or ended meanwhile")
        self.video_id = video_id


async def _by_id(conn: Any, video_id: str) -> Task | None:
    row = await conn.fetch_one(sa.select(video_tasks).where(_T.video_id == video_id))
    return Task.from_row(row) if row is not None else None


async def _create(
    conn: Any,
    new: NewTask,
    activity: Activity,
    notify: bool,
    gate: Gate | None = None,
    postgres: bool = False,
) -> tuple[Task, bool]:
    if gate is not None:
        # First, so that a replay of the same Idempotency-Key finds the first task, not a
        # quota its own first attempt used up.
        await serialise(conn, new.user_id, postgres)
    if new.idempotency_key is not None:
        row = await conn.fetch_one(
            sa.select(video_tasks).where(
                _T.user_id == new.user_id, _T.idempotency_key == new.idempotency_key
            )
        )
        if row is not None:
            return _replay(Task.from_row(row), new), False
    now = wall_ms()
    if gate is not None:
        licences, used = await standing_of(conn, new.user_id, now)
        refusals = exceeded(gate(licences, now), used)
        if refusals:
            await refuse(conn, new.user_id, refusals, now)
    values: dict[str, Any] = {
        "video_id": new.video_id,
        "user_id": new.user_id,
        "external_video_id": None,
        "status": new.status,
        "phase": new.phase,
        "progress": 0,
        "prompt": new.prompt,
        "model": new.model,
        "size": new.size,
        "duration": new.duration,
        "media_type": new.media_type,
        "error_code": None,
        "error_message": None,
        "poll_count": 0,
        "last_poll_at": None,
        "next_poll_at": None,
        "seq": 1,
        "restarts": 0,
        "submit_started_at": None,
        "remixed_from_video_id": new.remixed_from_video_id,
        "idempotency_key": new.idempotency_key,
        "request_hash": new.request_hash,
        "upstream_expires_at": None,
        "deadline_at": new.deadline_at,
        "owner": new.owner,
        "lease_expires_at": new.lease_expires_at,
        "created_at": now,
        "updated_at": now,
        "started_at": None,
        "completed_at": None,
        "content_stored_at": None,
        "content_expired_at": None,
        "content_variants": None,
        "content_pending_since": None,
        "estimated_end_at": None,
        "channel": None,
    }
    await conn.execute(video_tasks.insert().values(**values))
    if new.image is not None:
        content_type, filename, data = new.image
        await conn.execute(
            task_inputs.insert().values(
                video_id=new.video_id,
                content_type=content_type,
                filename=filename,
                data_base64=data,
            )
        )
    await insert_activity(conn, activity, now)
    if notify:
        await announce(conn, new.video_id, 1, new.user_id)
    return Task.from_row(values), True


def _replay(existing: Task, new: NewTask) -> Task:
    """An Idempotency-Key seen before: the same request gets the first result."""
    if existing.request_hash != new.request_hash:
        raise Conflict(
            "idempotency_key",
            "this Idempotency-Key was already used with a different request body",
        )
    return existing


async def _change(
    conn: Any,
    video_id: str,
    expected_seq: int,
    changes: Mapping[str, Any],
    activity: Activity | None,
    bump: bool,
    notify: bool,
) -> Task:
    now = wall_ms()
    values: dict[str, Any] = {**changes, "updated_at": now}
    if bump:
        values["seq"] = expected_seq + 1
    if "progress" in values:
        # Progress never goes backwards, whatever a caller passes.
        values["progress"] = sa.case(
            (_T.progress > values["progress"], _T.progress), else_=values["progress"]
        )
    if changes.get("poll_count") == "+1":
        values["poll_count"] = _T.poll_count + 1
    statement = (
        video_tasks.update()
        .where(
            _T.video_id == video_id,
            _T.seq == expected_seq,
            _T.status.not_in(TERMINAL_STATUSES),
        )
        .values(**values)
        .returning(*video_tasks.c)
    )
    row = await conn.fetch_one(statement)
    if row is None:
        raise StaleTask(video_id)
    if activity is not None:
        await insert_activity(conn, activity, now)
    task = Task.from_row(row)
    if bump and notify:
        await announce(conn, task.video_id, task.seq, task.user_id)
    return task


async def _list(
    conn: Any,
    user_id: str,
    status: str | None,
    descending: bool,
    offset: int,
    limit: int,
    cursor: tuple[int, str] | None,
) -> TaskPage:
    where = [_T.user_id == user_id]
    if status is not None:
        where.append(_T.status == status)
    total = await conn.fetch_val(sa.select(sa.func.count()).select_from(video_tasks).where(*where))
    if cursor is not None:
        created, video_id = cursor
        key = sa.tuple_(_T.created_at, _T.video_id)
        where.append(
            key < sa.tuple_(created, video_id) if descending else key > sa.tuple_(created, video_id)
        )
    order = (
        (_T.created_at.desc(), _T.video_id.desc())
        if descending
        else (_T.created_at.asc(), _T.video_id.asc())
    )
    query = sa.select(video_tasks).where(*where).order_by(*order).limit(limit)
    if cursor is None:
        query = query.offset(offset)
    rows = await conn.fetch_all(query)
    return TaskPage([Task.from_row(row) for row in rows], int(total))


async def _stats(conn: Any, user_id: str) -> dict[str, int]:
    rows = await conn.fetch_all(
        sa.select(_T.status, sa.func.count().label("n"))
        .where(_T.user_id == user_id)
        .group_by(_T.status)
    )
    counts = dict.fromkeys((status.value for status in Status), 0)
    for row in rows:
        counts[row["status"]] = int(row["n"])
    return counts


async def _unfinished(conn: Any, limit: int) -> list[Task]:
    rows = await conn.fetch_all(
        sa.select(video_tasks)
        .where(_T.status.in_(UNFINISHED_STATUSES))
        .order_by(_T.created_at)
        .limit(limit)
    )
    return [Task.from_row(row) for row in rows]


async def _input(conn: Any, video_id: str) -> tuple[str, str, bytes] | None:
    row = await conn.fetch_one(sa.select(task_inputs).where(task_inputs.c.video_id == video_id))
    if row is None:
        return None
    return row["content_type"], row["filename"], base64.b64decode(row["data_base64"])


async def _claimed_external_ids(conn: Any, external_ids: list[str]) -> set[str]:
    if not external_ids:
        return set()
    rows = await conn.fetch_all(
        sa.select(_T.external_video_id).where(_T.external_video_id.in_(external_ids))
    )
    return {row["external_video_id"] for row in rows}


async def _by_external_id(conn: Any, external_id: str) -> Task | None:
    row = await conn.fetch_one(sa.select(video_tasks).where(_T.external_video_id == external_id))
    return Task.from_row(row) if row is not None else None


class TaskStore:
    """Video tasks, as whole units of work."""

    def __init__(self, database: Database) -> None:
        self._db = database
        # Other instances hear of every announced change (PostgreSQL LISTEN/NOTIFY).
        self._notify = database.dialect == "postgresql"

    async def create(
        self, new: NewTask, activity: Activity, gate: Gate | None = None
    ) -> tuple[Task, bool]:
        """Store a new task (+ its image, + the activity); ``(task, created)``.

        ``gate`` (the user's licences, now) -> the Quota to enforce, or raises: the plan's
        check, in the same unit as the count and the insert (QuotaExceeded beyond it).

        With an Idempotency-Key already used by this user: the first task and False when the
        request hash matches, Conflict(field="idempotency_key") when it does not.
        """
        try:
            return await self._db.run(
                _create, new, activity, self._notify, gate, self._db.dialect == "postgresql"
            )
        except Conflict:
            if new.idempotency_key is None:
                raise
            # Two requests with one key raced; the loser replays the winner.
            existing = await self.by_idempotency_key(new.user_id, new.idempotency_key)
            if existing is None:
                raise
            return _replay(existing, new), False

    async def by_idempotency_key(self, user_id: str, key: str) -> Task | None:
        async def find(conn: Any) -> Task | None:
            row = await conn.fetch_one(
                sa.select(video_tasks).where(_T.user_id == user_id, _T.idempotency_key == key)
            )
            return Task.from_row(row) if row is not None else None

        return await self._db.read(find)

    async def get(self, video_id: str) -> Task | None:
        return await self._db.read(_by_id, video_id)

    async def by_external_id(self, external_id: str) -> Task | None:
        """The task that holds this upstream job (a webhook names only the job)."""
        return await self._db.read(_by_external_id, external_id)

    async def change(
        self,
        task: Task,
        activity: Activity | None = None,
        *,
        bump: bool = True,
        **changes: Any,
    ) -> Task:
        """Apply ``changes`` if the task is still at ``task.seq`` and not terminal.

        ``bump`` adds one to ``seq`` (every announced change does; a bare poll count does
        not). ``poll_count="+1"`` increments; ``progress`` never decreases. Raises StaleTask.
        """
        return await self._db.run(
            _change, task.video_id, task.seq, changes, activity, bump, self._notify
        )

    async def page(
        self,
        user_id: str,
        *,
        status: str | None = None,
        descending: bool = True,
        page: int = 1,
        page_size: int = 20,
        cursor: tuple[int, str] | None = None,
    ) -> TaskPage:
        offset = (page - 1) * page_size
        return await self._db.run(_list, user_id, status, descending, offset, page_size, cursor)

    async def stats(self, user_id: str) -> dict[str, int]:
        return await self._db.read(_stats, user_id)

    async def unfinished(self, limit: int = 100_000) -> list[Task]:
        return await self._db.read(_unfinished, limit)

    async def input_image(self, video_id: str) -> tuple[str, str, bytes] | None:
        return await self._db.read(_input, video_id)

    async def claimed_external_ids(self, external_ids: list[str]) -> set[str]:
        """Which of these upstream ids some task already holds."""
        return await self._db.read(_claimed_external_ids, external_ids)


# A task that ended meanwhile keeps the poll count it ended with.
_RECORD_POLL = (
    "UPDATE video_tasks SET poll_count = poll_count + :n, last_poll_at = :at "
    f"WHERE video_id = :vid AND status IN ({UNFINISHED_SQL})"
)


async def _record_polls(conn: Any, entries: list[dict[str, Any]]) -> None:
    await conn.execute_many(_RECORD_POLL, entries)


async def record_polls(database: Database, polls: dict[str, tuple[int, int]]) -> None:
    """Add poll counts and stamp last-poll times for many tasks in one unit of work.

    ``polls`` maps video id to ``(polls to add, last poll time in ms)``. Counts add up, so
    this commutes with the conditional updates actors make.
    """
    entries = [{"vid": vid, "n": n, "at": at} for vid, (n, at) in polls.items()]
    await database.run(_record_polls, entries)


async def _many(conn: Any, video_ids: list[str]) -> list[Task]:
    rows = await conn.fetch_all(sa.select(video_tasks).where(_T.video_id.in_(video_ids)))
    return [Task.from_row(row) for row in rows]


async def _changed_since(conn: Any, user_ids: list[str], since: int) -> list[Task]:
    rows = await conn.fetch_all(
        sa.select(video_tasks).where(_T.user_id.in_(user_ids), _T.updated_at >= since)
    )
    return [Task.from_row(row) for row in rows]


async def tasks_by_ids(database: Database, video_ids: list[str]) -> list[Task]:
    """Current rows of these tasks (one statement)."""
    if not video_ids:
        return []
    return await database.read(_many, video_ids)


async def tasks_changed_since(database: Database, user_ids: list[str], since: int) -> list[Task]:
    """Tasks of these users changed at or after ``since`` (wall ms)."""
    if not user_ids:
        return []
    return await database.read(_changed_since, user_ids, since)


async def _user_unfinished(conn: Any, user_id: str) -> list[Task]:
    rows = await conn.fetch_all(
        sa.select(video_tasks)
        .where(_T.user_id == user_id, _T.status.in_(UNFINISHED_STATUSES))
        .order_by(_T.created_at)
    )
    return [Task.from_row(row) for row in rows]


async def unfinished_of_user(database: Database, user_id: str) -> list[Task]:
    """The user's unfinished tasks, oldest first (what a new event stream starts with)."""
    return await database.read(_user_unfinished, user_id)
