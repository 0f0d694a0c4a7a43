"""Units of work for the `system_config` rows: settings operators change at run time.

Storage knows only keys and JSON values; their meaning and types are `sora_actors.
system_config`'s. A change is written, logged (old and new values) and, on PostgreSQL,
announced on its own channel in one transaction: the other instances re-read on the
notification, which is delivered on commit.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from ..clock import wall_ms
from .accounts import insert_activity
from .database import Database
from .records import Activity
from .tables import system_config

CHANNEL = "sora_config_events"


async def _read(conn: Any) -> dict[str, Any]:
    rows = await conn.fetch_all("SELECT key, value FROM system_config")
    values: dict[str, Any] = {}
    for row in rows:
        try:
            values[row["key"]] = json.loads(row["value"])
        except ValueError:
            continue  # not JSON (a hand edit): the reader falls back to the default
    return values


async def _write(
    conn: Any, changes: dict[str, Any], activity: Activity, notify: bool
) -> dict[str, Any]:
    now = wall_ms()
    before = await _read(conn)
    for key, value in changes.items():
        # Delete + insert rather than an upsert: the same statements on SQLite and PostgreSQL.
        await conn.execute(system_config.delete().where(system_config.c.key == key))
        await conn.execute(
            system_config.insert().values(key=key, value=json.dumps(value), updated_at=now)
        )
    details = {key: {"old": before.get(key), "new": value} for key, value in changes.items()}
    await insert_activity(conn, dataclasses.replace(activity, details=details), now)
    if notify:
        await conn.execute(
            "SELECT pg_notify(:channel, :payload)", {"channel": CHANNEL, "payload": str(now)}
        )
    return {**before, **changes}


class ConfigRows:
    """The stored run-time settings, as whole units of work."""

    def __init__(self, database: Database) -> None:
        self._db = database

    async def read(self) -> dict[str, Any]:
        """Every stored key and its decoded JSON value."""
        return await self._db.read(_read)

    async def write(self, changes: dict[str, Any], activity: Activity) -> dict[str, Any]:
        """Store ``changes`` (key -> JSON-able value) and log ``activity`` with the old and
        new values as its details; every stored key and value afterwards."""
        notify = self._db.dialect == "postgresql"
        return await self._db.run(_write, changes, activity, notify)
