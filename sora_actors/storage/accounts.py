"""Units of work for users and the activity log."""

from __future__ import annotations

import dataclasses
import json
import uuid
from typing import Any

import sqlalchemy as sa

from ..clock import wall_ms
from .database import Database
from .errors import Conflict
from .records import Activity, User
from .tables import activity_log, users


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
    conn: Any, username: str, email: str | None, password_hash: str, activity: Activity
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
        "role": "USER",
        "is_active": True,
        "last_login": None,
        "created_at": now,
        "updated_at": now,
    }
    await conn.execute(users.insert().values(**values))
    await insert_activity(conn, dataclasses.replace(activity, user_id=user_id), now)
    return User.from_row(values)


# Looked up on every authenticated request: SQL text, no statement to build per call.
_USER_BY = {
    column: f"SELECT {', '.join(c.name for c in users.c)} FROM users WHERE {column} = :value"
    for column in ("id", "username_key")
}


async def _find_user(conn: Any, column: str, value: str) -> User | None:
    row = await conn.fetch_one(_USER_BY[column], {"value": value})
    return User.from_row(row) if row is not None else None


async def _record_login(conn: Any, user_id: str, activity: Activity) -> None:
    now = wall_ms()
    await conn.execute(
        users.update().where(users.c.id == user_id).values(last_login=now, updated_at=now)
    )
    await insert_activity(conn, activity, now)


async def _log(conn: Any, activity: Activity) -> None:
    await insert_activity(conn, activity, wall_ms())


async def _activities(conn: Any, user_id: str | None, limit: int) -> list[dict[str, Any]]:
    query = sa.select(activity_log).order_by(activity_log.c.created_at.desc()).limit(limit)
    if user_id is not None:
        query = query.where(activity_log.c.user_id == user_id)
    return [dict(row._mapping) for row in await conn.fetch_all(query)]


class AccountStore:
    """Users and the activity log, as whole units of work."""

    def __init__(self, database: Database) -> None:
        self._db = database

    async def create_user(
        self, username: str, email: str | None, password_hash: str, activity: Activity
    ) -> User:
        """Insert a user and log the registration; Conflict names the clashing field."""
        return await self._db.run(_create_user, username, email, password_hash, activity)

    async def by_username(self, username: str) -> User | None:
        return await self._db.read(_find_user, "username_key", username.lower())

    async def by_id(self, user_id: str) -> User | None:
        return await self._db.read(_find_user, "id", user_id)

    async def record_login(self, user_id: str, activity: Activity) -> None:
        """Stamp lastLogin and log the login, together."""
        await self._db.run(_record_login, user_id, activity)

    async def log(self, activity: Activity) -> None:
        await self._db.run(_log, activity)

    async def activities(
        self, user_id: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        """Newest first; for tests and admin views."""
        return await self._db.read(_activities, user_id, limit)
