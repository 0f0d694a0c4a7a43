"""Units of work for personal API keys (``sk-sora-...``): only their hashes are stored."""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from ..clock import wall_ms
from .accounts import insert_activity
from .database import Database
from .errors import Conflict
from .records import Activity, User
from .tables import api_keys, users

_K = api_keys.c


@dataclass(frozen=True, slots=True)
class ApiKey:
    """One key as listed: never the key itself, only what tells it apart."""

    id: str
    user_id: str
    name: str
    prefix: str
    last4: str
    created_at: int
    last_used_at: int | None
    revoked_at: int | None

    @classmethod
    def from_row(cls, row: Any) -> ApiKey:
        return cls(**{name: row[name] for name in _KEY_FIELDS})


_KEY_FIELDS = tuple(f.name for f in dataclasses.fields(ApiKey))


@dataclass(frozen=True, slots=True)
class NewApiKey:
    user_id: str
    name: str
    key_hash: str
    prefix: str
    last4: str


class TooManyKeys(Conflict):
    """The user already holds as many working keys as allowed."""

    def __init__(self, limit: int) -> None:
        super().__init__("api_keys", f"at most {limit} active API keys per user")
        self.limit = limit


async def _create(conn: Any, new: NewApiKey, limit: int, activity: Activity) -> ApiKey:
    active = await conn.fetch_val(
        sa.select(sa.func.count())
        .select_from(api_keys)
        .where(_K.user_id == new.user_id, _K.revoked_at.is_(None))
    )
    if int(active) >= limit:
        raise TooManyKeys(limit)
    now = wall_ms()
    values: dict[str, Any] = {
        "id": f"key_{uuid.uuid4().hex}",
        "user_id": new.user_id,
        "name": new.name,
        "key_hash": new.key_hash,
        "prefix": new.prefix,
        "last4": new.last4,
        "created_at": now,
        "last_used_at": None,
        "revoked_at": None,
    }
    await conn.execute(api_keys.insert().values(**values))
    details = {**(activity.details or {}), "keyId": values["id"]}
    await insert_activity(conn, dataclasses.replace(activity, details=details), now)
    return ApiKey.from_row(values)


async def _list(conn: Any, user_id: str) -> list[ApiKey]:
    rows = await conn.fetch_all(
        sa.select(api_keys)
        .where(_K.user_id == user_id)
        .order_by(_K.created_at.desc(), _K.id.desc())
    )
    return [ApiKey.from_row(row) for row in rows]


async def _revoke(conn: Any, user_id: str, key_id: str, activity: Activity) -> ApiKey | None:
    row = await conn.fetch_one(sa.select(api_keys).where(_K.id == key_id, _K.user_id == user_id))
    if row is None:
        return None
    if row["revoked_at"] is not None:  # revoked before: nothing changes, nothing is logged
        return ApiKey.from_row(row)
    now = wall_ms()
    await conn.execute(
        api_keys.update().where(_K.id == key_id, _K.revoked_at.is_(None)).values(revoked_at=now)
    )
    await insert_activity(conn, activity, now)
    return dataclasses.replace(ApiKey.from_row(row), revoked_at=now)


async def _by_hash(conn: Any, key_hash: str) -> tuple[ApiKey, User] | None:
    query = (
        sa.select(*api_keys.c, *[column.label(f"u_{column.name}") for column in users.c])
        .select_from(api_keys.join(users, users.c.id == _K.user_id))
        .where(_K.key_hash == key_hash)
    )
    row = await conn.fetch_one(query)
    if row is None:
        return None
    account = {column.name: row[f"u_{column.name}"] for column in users.c}
    return ApiKey.from_row(row), User.from_row(account)


async def _touch(conn: Any, stamps: list[dict[str, Any]]) -> None:
    await conn.execute_many(
        "UPDATE api_keys SET last_used_at = :at WHERE id = :id "
        "AND (last_used_at IS NULL OR last_used_at < :at)",
        stamps,
    )


class ApiKeyStore:
    """Personal API keys, as whole units of work."""

    def __init__(self, database: Database) -> None:
        self._db = database

    async def create(self, new: NewApiKey, limit: int, activity: Activity) -> ApiKey:
        """Store a key (its hash) and log it; TooManyKeys when ``limit`` keys already work."""
        return await self._db.run(_create, new, limit, activity)

    async def of_user(self, user_id: str) -> list[ApiKey]:
        """The user's keys, revoked ones included, newest first."""
        return await self._db.read(_list, user_id)

    async def revoke(self, user_id: str, key_id: str, activity: Activity) -> ApiKey | None:
        """Revoke one of the user's keys (at once); None when the user has no such key."""
        return await self._db.run(_revoke, user_id, key_id, activity)

    async def by_hash(self, key_hash: str) -> tuple[ApiKey, User] | None:
        """The key with this hash and its account, in one read (one per request)."""
        return await self._db.read(_by_hash, key_hash)

    async def record_use(self, stamps: dict[str, int]) -> None:
        """Stamp last-used times (key id -> wall ms) of many keys in one unit of work."""
        if stamps:
            await self._db.run(_touch, [{"id": key, "at": at} for key, at in stamps.items()])
