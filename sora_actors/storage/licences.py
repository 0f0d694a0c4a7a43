"""Units of work for licences: generate, list, revoke, activate, look up.

Keys never reach this module: callers hand in the key's hash and its last four characters
(`sora_actors.licence_keys`).
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from ..clock import wall_ms
from .accounts import insert_activity
from .database import Database
from .quota import DAY_MS, Usage, counts, usage_of
from .records import Activity
from .tables import licenses, users

_L = licenses.c
# Rows per INSERT when generating many keys (SQLite allows 32766 parameters a statement).
_INSERT_CHUNK = 200


class LicenceState:
    """A licence's state, as the API shows it and filters by."""

    UNUSED = "UNUSED"  # not activated yet
    ACTIVE = "ACTIVE"
    EXPIRED = "EXPIRED"
    REVOKED = "REVOKED"
    ALL = (UNUSED, ACTIVE, EXPIRED, REVOKED)


@dataclass(frozen=True, slots=True)
class Licence:
    id: str
    key_last4: str
    type: str
    user_id: str | None
    device_id: str | None
    features: list[str]
    duration_days: int | None
    is_active: bool
    revoked_at: int | None
    activated_at: int | None
    expires_at: int | None
    created_at: int
    username: str | None = None  # of user_id, when read with the user
    email: str | None = None

    @classmethod
    def from_row(cls, row: Any) -> Licence:
        mapping = dict(row._mapping)
        return cls(
            id=mapping["id"],
            key_last4=mapping["key_last4"],
            type=mapping["type"],
            user_id=mapping["user_id"],
            device_id=mapping["device_id"],
            features=json.loads(mapping["features"] or "[]"),
            duration_days=mapping["duration_days"],
            is_active=bool(mapping["is_active"]),
            revoked_at=mapping["revoked_at"],
            activated_at=mapping["activated_at"],
            expires_at=mapping["expires_at"],
            created_at=mapping["created_at"],
            username=mapping.get("username"),
            email=mapping.get("email"),
        )

    def state(self, now: int) -> str:
        if not self.is_active:
            return LicenceState.REVOKED
        if self.expires_at is not None and self.expires_at <= now:
            return LicenceState.EXPIRED
        return LicenceState.UNUSED if self.user_id is None else LicenceState.ACTIVE


class ActivationRefused(Exception):
    """The key cannot be activated by this caller; ``reason`` is a `LicenceState` or
    UNKNOWN / BOUND_ELSEWHERE."""

    def __init__(self, reason: str, licence: Licence | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.licence = licence


@dataclass(frozen=True, slots=True)
class LicencePage:
    items: list[Licence]
    total: int


def _state_filter(state: str, now: int) -> Any:
    live = _L.is_active.is_(True)
    unexpired = sa.or_(_L.expires_at.is_(None), _L.expires_at > now)
    return {
        LicenceState.REVOKED: _L.is_active.is_(False),
        LicenceState.EXPIRED: sa.and_(live, _L.expires_at.is_not(None), _L.expires_at <= now),
        LicenceState.ACTIVE: sa.and_(live, _L.user_id.is_not(None), unexpired),
        LicenceState.UNUSED: sa.and_(live, _L.user_id.is_(None), unexpired),
    }[state]


_WITH_USER = sa.select(licenses, users.c.username, users.c.email).select_from(
    licenses.outerjoin(users, users.c.id == _L.user_id)
)


async def _generate(
    conn: Any,
    keys: Sequence[tuple[str, str]],
    kind: str,
    duration_days: int | None,
    admin_id: str,
    activity: Activity,
) -> list[str]:
    now = wall_ms()
    ids = [str(uuid.uuid4()) for _ in keys]
    rows: list[dict[str, Any]] = [
        {
            "id": licence_id,
            "key_hash": key_hash,
            "key_last4": last4,
            "type": kind,
            "user_id": None,
            "device_id": None,
            "features": "[]",
            "duration_days": duration_days,
            "is_active": True,
            "revoked_at": None,
            "revoked_by": None,
            "created_by": admin_id,
            "activated_at": None,
            "expires_at": None,
            "created_at": now,
        }
        for licence_id, (key_hash, last4) in zip(ids, keys, strict=True)
    ]
    for start in range(0, len(rows), _INSERT_CHUNK):
        await conn.execute(licenses.insert().values(rows[start : start + _INSERT_CHUNK]))
    await insert_activity(conn, activity, now)
    return ids


async def _page(
    conn: Any, kind: str | None, state: str | None, now: int, offset: int, limit: int
) -> LicencePage:
    where = []
    if kind is not None:
        where.append(_L.type == kind)
    if state is not None:
        where.append(_state_filter(state, now))
    total = await conn.fetch_val(sa.select(sa.func.count()).select_from(licenses).where(*where))
    rows = await conn.fetch_all(
        _WITH_USER.where(*where)
        .order_by(_L.created_at.desc(), _L.id.desc())
        .offset(offset)
        .limit(limit)
    )
    return LicencePage([Licence.from_row(row) for row in rows], int(total))


async def _one(conn: Any, condition: Any) -> Licence | None:
    row = await conn.fetch_one(_WITH_USER.where(condition))
    return Licence.from_row(row) if row is not None else None


async def _revoke(
    conn: Any, licence_id: str, admin_id: str, activity: Activity
) -> tuple[Licence, bool] | None:
    now = wall_ms()
    changed = await conn.fetch_one(
        licenses.update()
        .where(_L.id == licence_id, _L.is_active.is_(True))
        .values(is_active=False, revoked_at=now, revoked_by=admin_id)
        .returning(_L.id)
    )
    licence = await _one(conn, _L.id == licence_id)
    if licence is None:
        return None
    if changed is not None:
        details = {**(activity.details or {}), "type": licence.type, "userId": licence.user_id}
        await insert_activity(conn, dataclasses.replace(activity, details=details), now)
    return licence, changed is not None


def _usable(licence: Licence | None, now: int) -> Licence:
    """The licence, unless it is unknown, revoked or expired (ActivationRefused)."""
    if licence is None:
        raise ActivationRefused("UNKNOWN")
    state = licence.state(now)
    if state in (LicenceState.REVOKED, LicenceState.EXPIRED):
        raise ActivationRefused(state, licence)
    return licence


def _check(licence: Licence | None, device_id: str | None, now: int) -> str:
    """What anyone holding the key may learn: bound to a device, only that device (a caller
    naming none included) hears VALID."""
    try:
        found = _usable(licence, now)
    except ActivationRefused as refused:
        return refused.reason
    if found.device_id is not None and device_id != found.device_id:
        return "BOUND_ELSEWHERE"
    return "VALID"


async def _activate(
    conn: Any, key_hash: str, user_id: str, device_id: str | None, activity: Activity
) -> tuple[Licence, bool]:
    now = wall_ms()
    for _ in range(2):  # a second look when a concurrent activation changed the row
        licence = _usable(await _one(conn, _L.key_hash == key_hash), now)
        if licence.user_id not in (None, user_id) or (
            None not in (licence.device_id, device_id) and licence.device_id != device_id
        ):
            raise ActivationRefused("BOUND_ELSEWHERE", licence)
        if licence.user_id is None:
            values: dict[str, Any] = {
                "user_id": user_id,
                "device_id": device_id,
                "activated_at": now,
                "expires_at": (
                    now + licence.duration_days * DAY_MS if licence.duration_days else None
                ),
            }
            guard = _L.user_id.is_(None)
        elif licence.device_id is None and device_id is not None:
            values, guard = {"device_id": device_id}, _L.device_id.is_(None)
        else:
            return licence, False  # already this caller's (on this device)
        changed = await conn.fetch_one(
            licenses.update()
            .where(_L.id == licence.id, _L.is_active.is_(True), guard)
            .values(**values)
            .returning(_L.id)
        )
        if changed is None:
            continue
        details = {**(activity.details or {}), "licenseId": licence.id, "type": licence.type}
        if device_id is not None:
            details["deviceId"] = device_id
        await insert_activity(conn, dataclasses.replace(activity, details=details), now)
        return _usable(await _one(conn, _L.id == licence.id), now), True
    raise ActivationRefused("BOUND_ELSEWHERE")


async def standing_of(conn: Any, user_id: str, now: int) -> tuple[list[Licence], Usage]:
    """A user's licences and usage in ONE statement (the create check and /api/auth/me
    run it on every call): the counts' row joined to the licences, if any."""
    numbers = counts(user_id, now).subquery("numbers")
    rows = await conn.fetch_all(
        sa.select(numbers, licenses)
        .select_from(numbers.outerjoin(licenses, _L.user_id == user_id))
        .order_by(_L.activated_at)
    )
    licences = [Licence.from_row(row) for row in rows if row["id"] is not None]
    return licences, usage_of(rows[0])


async def _find(conn: Any, key_hash: str) -> Licence | None:
    return await _one(conn, _L.key_hash == key_hash)


class LicenceStore:
    """Licences, as whole units of work."""

    def __init__(self, database: Database) -> None:
        self._db = database

    async def generate(
        self,
        keys: Sequence[tuple[str, str]],
        kind: str,
        duration_days: int | None,
        admin_id: str,
        activity: Activity,
    ) -> list[str]:
        """Store licences for ``keys`` ((hash, last four) each) and log it; their ids."""
        return await self._db.run(_generate, keys, kind, duration_days, admin_id, activity)

    async def page(
        self, *, kind: str | None, state: str | None, page: int, page_size: int
    ) -> LicencePage:
        """Newest first, with their users."""
        offset = (page - 1) * page_size
        return await self._db.run(_page, kind, state, wall_ms(), offset, page_size)

    async def revoke(
        self, licence_id: str, admin_id: str, activity: Activity
    ) -> tuple[Licence, bool] | None:
        """Revoke (logged once); ``(licence, changed)``, None when there is no such licence."""
        return await self._db.run(_revoke, licence_id, admin_id, activity)

    async def activate(
        self, key_hash: str, user_id: str, device_id: str | None, activity: Activity
    ) -> tuple[Licence, bool]:
        """Bind the licence to the user (and device); ``(licence, changed)``.

        ActivationRefused says why not (unknown, revoked, expired, bound elsewhere)."""
        return await self._db.run(_activate, key_hash, user_id, device_id, activity)

    async def check(self, key_hash: str, device_id: str | None) -> str:
        """What `validate` may say of a key: VALID, UNKNOWN, REVOKED, EXPIRED or
        BOUND_ELSEWHERE (another device than ``device_id``)."""
        return _check(await self._db.read(_find, key_hash), device_id, wall_ms())

    async def standing(self, user_id: str) -> tuple[list[Licence], Usage, int]:
        """A user's licences and usage, and the moment both were read (wall ms)."""
        now = wall_ms()
        licences, used = await self._db.read(standing_of, user_id, now)
        return licences, used, now
