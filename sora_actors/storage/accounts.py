"""Units of work for users, their login sessions and the activity log.

These units are the one writer of account and session state (role, active, banned,
password, revoked sessions). Each such change, on PostgreSQL, also sends ``NOTIFY
sora_control_events`` (``user <id>`` / ``session <id>``) in the same transaction, so
that every instance's access cache (`sora_actors/access.py`) drops its copy on commit; the
command line's changes reach running servers the same way.
"""

from __future__ import annotations

import dataclasses
import json
import re
import uuid
from typing import Any

import sqlalchemy as sa

from ..clock import wall_ms
from .database import Database
from .errors import Conflict
from .notify import signal_change
from .records import (
    Activity,
    NewSession,
    SessionState,
    User,
    UserChanges,
    UserDetail,
    UserSummary,
)
from .tables import activity_log, sessions, users, video_tasks

ROLES = ("USER", "ADMIN")
LAST_ADMIN = "last_admin"  # Conflict.field when a change would leave no active admin
RECENT_ACTIVITY = 20


async def insert_activity(conn: Any, entry: Activity, now: int) -> None:
    """Write one ActivityLog row inside the caller's unit of work."""
    await conn.execute(
        activity_log.insert().values(
            id=uuid.uuid4().hex,
            user_id=entry.user_id,
            action=entry.action,
            details=json.dumps(entry.details) if entry.details is not None else None,
            ip=entry.ip,
            user_agent=entry.user_agent[:512] if entry.user_agent else None,
            created_at=now,
        )
    )


async def _create_user(
    conn: Any,
    username: str,
    email: str | None,
    password_hash: str,
    activity: Activity,
    role: str,
) -> User:
    now = wall_ms()
    username_key = username.lower()
    email_key = email.lower() if email else None
    clash = await conn.fetch_one(
        sa.select(users.c.username_key, users.c.email_key).where(
            sa.or_(users.c.username_key == username_key, users.c.email_key == email_key)
            if email_key
            else users.c.username_key == username_key
        )
    )
    if clash is not None:
        if clash["username_key"] == username_key:
            raise Conflict("username", "this username is already taken")
        raise Conflict("email", "this email is already registered")
    user_id = str(uuid.uuid4())
    values = {
        "id": user_id,
        "username": username,
        "username_key": username_key,
        "email": email,
        "email_key": email_key,
        "password_hash": password_hash,
        "role": role,
        "is_active": True,
        "banned": False,
        "last_login": None,
        "created_at": now,
        "updated_at": now,
    }
    await conn.execute(users.insert().values(**values))
    logged = dataclasses.replace(activity, user_id=activity.user_id or user_id)
    await insert_activity(conn, logged, now)
    return User.from_row(values)


# Looked up on every authenticated request: SQL text, no statement to build per call.
_USER_BY = {
    column: f"SELECT {', '.join(c.name for c in users.c)} FROM users WHERE {column} = :value"
    for column in ("id", "username_key")
}


async def _find_user(conn: Any, column: str, value: str) -> User | None:
    row = await conn.fetch_one(_USER_BY[column], {"value": value})
    return User.from_row(row) if row is not None else None


async def _record_login(conn: Any, session: NewSession, activity: Activity) -> None:
    now = wall_ms()
    await conn.execute(
        users.update().where(users.c.id == session.user_id).values(last_login=now, updated_at=now)
    )
    await conn.execute(
        sessions.insert().values(
            id=session.id,
            user_id=session.user_id,
            created_at=now,
            expires_at=session.expires_at,
            revoked_at=None,
            ip=session.ip,
            user_agent=session.user_agent[:512] if session.user_agent else None,
        )
    )
    await insert_activity(conn, activity, now)


async def _access(
    conn: Any, user_id: str, session_id: str
) -> tuple[User | None, SessionState | None]:
    """The account and the named session of it, in one statement (a cache miss's read)."""
    joined = users.outerjoin(
        sessions, sa.and_(sessions.c.id == session_id, sessions.c.user_id == users.c.id)
    )
    row = await conn.fetch_one(
        sa.select(
            users,
            sessions.c.id.label("session_id"),
            sessions.c.expires_at.label("session_expires_at"),
            sessions.c.revoked_at.label("session_revoked_at"),
        )
        .select_from(joined)
        .where(users.c.id == user_id)
    )
    if row is None:
        return None, None
    state = None
    if row["session_id"] is not None:
        state = SessionState(
            row["session_id"], row["session_expires_at"], row["session_revoked_at"]
        )
    return User.from_row(row), state


async def _revoke_session(
    conn: Any, session_id: str, user_id: str, activity: Activity | None, notify: bool
) -> bool:
    now = wall_ms()
    row = await conn.fetch_one(
        sessions.update()
        .where(
            sessions.c.id == session_id,
            sessions.c.user_id == user_id,
            sessions.c.revoked_at.is_(None),
        )
        .values(revoked_at=now)
        .returning(sessions.c.id)
    )
    if activity is not None:
        await insert_activity(conn, activity, now)
    if notify:
        await signal_change(conn, "session", session_id)
    return row is not None


def _has_access_as_admin(role: str, is_active: bool, banned: bool) -> bool:
    return role == "ADMIN" and is_active and not banned


async def _other_admins(conn: Any, user_id: str, lock: bool) -> int:
    query = sa.select(users.c.id).where(
        users.c.role == "ADMIN",
        users.c.is_active.is_(True),
        users.c.banned.is_(False),
        users.c.id != user_id,
    )
    if lock:  # PostgreSQL: two admins demoting each other at once must not both succeed
        query = query.with_for_update()
    return len(await conn.fetch_all(query))


async def _update_user(
    conn: Any, user_id: str, changes: UserChanges, activity: Activity, notify: bool
) -> User | None:
    """Apply the changes; None when there is no such user. Refuses (Conflict) a clashing
    email, and any change that would leave no active, unbanned ADMIN."""
    row = await conn.fetch_one(sa.select(users).where(users.c.id == user_id))
    if row is None:
        return None
    before = User.from_row(row)
    now = wall_ms()
    values: dict[str, Any] = {"updated_at": now}
    if changes.role is not None:
        values["role"] = changes.role
    if changes.is_active is not None:
        values["is_active"] = changes.is_active
    if changes.banned is not None:
        values["banned"] = changes.banned
    if changes.password_hash is not None:
        values["password_hash"] = changes.password_hash
    if changes.clear_email:
        values["email"] = values["email_key"] = None
    elif changes.email is not None:
        email_key = changes.email.lower()
        clash = await conn.fetch_val(
            sa.select(users.c.id).where(users.c.email_key == email_key, users.c.id != user_id)
        )
        if clash is not None:
            raise Conflict("email", "this email is already registered")
        values["email"], values["email_key"] = changes.email, email_key
    after_admin = _has_access_as_admin(
        values.get("role", before.role),
        values.get("is_active", before.is_active),
        values.get("banned", before.banned),
    )
    was_admin = _has_access_as_admin(before.role, before.is_active, before.banned)
    if was_admin and not after_admin and await _other_admins(conn, user_id, lock=notify) == 0:
        raise Conflict(LAST_ADMIN, "this is the last active administrator")
    updated = await conn.fetch_one(
        users.update().where(users.c.id == user_id).values(**values).returning(*users.c)
    )
    if changes.revokes_sessions:
        ending = [sessions.c.user_id == user_id, sessions.c.revoked_at.is_(None)]
        keeps_access = changes.is_active is not False and changes.banned is not True
        if changes.keep_session is not None and keeps_access:
            ending.append(sessions.c.id != changes.keep_session)
        await conn.execute(sessions.update().where(*ending).values(revoked_at=now))
    await insert_activity(conn, activity, now)
    if notify:
        await signal_change(conn, "user", user_id)
    return User.from_row(updated)


def _escape_like(text: str) -> str:
    return re.sub(r"([\\%_])", r"\\\1", text)


async def _list_users(
    conn: Any,
    q: str | None,
    role: str | None,
    is_active: bool | None,
    page: int,
    page_size: int,
) -> tuple[list[UserSummary], int]:
    conditions = []
    if q:
        pattern = f"%{_escape_like(q.lower())}%"
        conditions.append(
            sa.or_(
                users.c.username_key.like(pattern, escape="\\"),
                users.c.email_key.like(pattern, escape="\\"),
                users.c.id == q,
            )
        )
    if role is not None:
        conditions.append(users.c.role == role)
    if is_active is not None:
        conditions.append(users.c.is_active.is_(is_active))
    total = await conn.fetch_val(sa.select(sa.func.count()).select_from(users).where(*conditions))
    task_count = (
        sa.select(sa.func.count())
        .select_from(video_tasks)
        .where(video_tasks.c.user_id == users.c.id)
        .scalar_subquery()
    )
    rows = await conn.fetch_all(
        sa.select(users, task_count.label("task_count"))
        .where(*conditions)
        .order_by(users.c.created_at.desc(), users.c.id)
        .limit(page_size)
        .offset((page - 1) * page_size)
    )
    return [UserSummary(User.from_row(row), int(row["task_count"])) for row in rows], int(total)


async def _user_detail(conn: Any, user_id: str) -> UserDetail | None:
    user = await _find_user(conn, "id", user_id)
    if user is None:
        return None
    counts = await conn.fetch_all(
        sa.select(video_tasks.c.status, sa.func.count().label("n"))
        .where(video_tasks.c.user_id == user_id)
        .group_by(video_tasks.c.status)
    )
    return UserDetail(
        user=user,
        tasks_by_status={row["status"]: int(row["n"]) for row in counts},
        activity=await _activities(conn, user_id, RECENT_ACTIVITY),
        licence=None,
    )


_SECRET_COLUMN = re.compile(r"key|hash|secret", re.IGNORECASE)


async def _licence_of(conn: Any, user_id: str) -> dict[str, Any] | None:
    """The user's newest licence row, without its key (nor any hash of it), or None.

    Plain SQL on purpose: the licences work reshapes that table; this reads what is there.
    """
    rows = await conn.fetch_all(
        "SELECT * FROM licenses WHERE user_id = :user_id", {"user_id": user_id}
    )
    if not rows:
        return None
    newest = max((dict(row._mapping) for row in rows), key=lambda r: r.get("created_at") or 0)
    return {name: value for name, value in newest.items() if not _SECRET_COLUMN.search(name)}


async def _log(conn: Any, activity: Activity) -> None:
    await insert_activity(conn, activity, wall_ms())


async def _activities(conn: Any, user_id: str | None, limit: int) -> list[dict[str, Any]]:
    query = (
        sa.select(activity_log)
        .order_by(activity_log.c.created_at.desc(), activity_log.c.id)
        .limit(limit)
    )
    if user_id is not None:
        query = query.where(activity_log.c.user_id == user_id)
    return [dict(row._mapping) for row in await conn.fetch_all(query)]


async def _data_version(conn: Any) -> int:
    return int(await conn.fetch_val("PRAGMA data_version"))


class AccountStore:
    """Users, sessions and the activity log, as whole units of work."""

    def __init__(self, database: Database) -> None:
        self._db = database
        self._notify = database.dialect == "postgresql"

    async def create_user(
        self,
        username: str,
        email: str | None,
        password_hash: str,
        activity: Activity,
        role: str = "USER",
    ) -> User:
        """Insert a user and log it (the activity's user, or the new one); Conflict names
        the clashing field."""
        return await self._db.run(_create_user, username, email, password_hash, activity, role)

    async def by_username(self, username: str) -> User | None:
        return await self._db.read(_find_user, "username_key", username.lower())

    async def by_id(self, user_id: str) -> User | None:
        return await self._db.read(_find_user, "id", user_id)

    async def record_login(self, session: NewSession, activity: Activity) -> None:
        """Store the new session, stamp lastLogin and log the login, together."""
        await self._db.run(_record_login, session, activity)

    async def access(
        self, user_id: str, session_id: str
    ) -> tuple[User | None, SessionState | None]:
        """The account and its session as stored now (one read)."""
        return await self._db.read(_access, user_id, session_id)

    async def revoke_session(
        self, session_id: str, user_id: str, activity: Activity | None = None
    ) -> bool:
        """Revoke one of the user's sessions; False if it was not live."""
        return await self._db.run(_revoke_session, session_id, user_id, activity, self._notify)

    async def update_user(
        self, user_id: str, changes: UserChanges, activity: Activity
    ) -> User | None:
        """Change an account (revoking its sessions when access is removed or the password
        is reset); None if there is no such user; Conflict (field ``email`` or
        `LAST_ADMIN`) when refused."""
        return await self._db.run(_update_user, user_id, changes, activity, self._notify)

    async def list_users(
        self,
        *,
        q: str | None = None,
        role: str | None = None,
        is_active: bool | None = None,
        page: int = 1,
        page_size: int = 20,
    ) -> tuple[list[UserSummary], int]:
        """A page of users, newest first, with their task counts; and the total."""
        return await self._db.run(_list_users, q, role, is_active, page, page_size)

    async def detail(self, user_id: str) -> UserDetail | None:
        detail = await self._db.run(_user_detail, user_id)
        if detail is None:
            return None
        return dataclasses.replace(detail, licence=await self._db.read(_licence_of, user_id))

    async def log(self, activity: Activity) -> None:
        await self._db.run(_log, activity)

    async def activities(
        self, user_id: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        """Newest first; for tests and admin views."""
        return await self._db.read(_activities, user_id, limit)

    async def outside_writes(self) -> int:
        """SQLite: a number that changes whenever another connection (the command line)
        committed to the file; how a server notices changes it was not told of."""
        return await self._db.read(_data_version)
