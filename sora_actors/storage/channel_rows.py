"""Units of work for the `channels` rows: upstream channels admins add, change or delete.

Storage knows names, JSON specs and tombstones; what a spec means is `sora_actors.
channel_registry`'s. A change is written, logged and, on PostgreSQL, announced on
`sora_channel_events` in one transaction (delivered on commit): the other instances re-read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ..clock import wall_ms
from .accounts import insert_activity
from .database import Database
from .records import Activity

CHANNEL = "sora_channel_events"


@dataclass(frozen=True, slots=True)
class ChannelRow:
    """One stored channel: its spec (None for unreadable JSON); a tombstone (``deleted``)
    keeps the spec the channel had, for the tasks still on it."""

    name: str
    spec: dict[str, Any] | None
    deleted: bool
    updated_at: int


async def _read(conn: Any) -> list[ChannelRow]:
    rows = await conn.fetch_all("SELECT name, spec, deleted, updated_at FROM channels")
    stored: list[ChannelRow] = []
    for row in rows:
        try:
            spec = json.loads(row["spec"])
        except ValueError:
            spec = None  # a hand edit: the reader ignores the row and says so
        stored.append(ChannelRow(row["name"], spec, bool(row["deleted"]), int(row["updated_at"])))
    return stored


async def _write(
    conn: Any, name: str, spec: dict[str, Any], deleted: bool, activity: Activity, notify: bool
) -> None:
    now = wall_ms()
    # Delete + insert rather than an upsert: the same statements on SQLite and PostgreSQL.
    await conn.execute("DELETE FROM channels WHERE name = :name", {"name": name})
    await conn.execute(
        "INSERT INTO channels (name, spec, deleted, updated_at) "
        "VALUES (:name, :spec, :deleted, :at)",
        {
            "name": name,
            "spec": json.dumps(spec),
            "deleted": 1 if deleted else 0,
            "at": now,
        },
    )
    await insert_activity(conn, activity, now)
    if notify:
        await conn.execute(
            "SELECT pg_notify(:channel, :payload)", {"channel": CHANNEL, "payload": name}
        )


class ChannelRows:
    """The stored channels, as whole units of work."""

    def __init__(self, database: Database) -> None:
        self._db = database

    async def read(self) -> list[ChannelRow]:
        return await self._db.read(_read)

    async def write(
        self, name: str, spec: dict[str, Any], activity: Activity, *, deleted: bool = False
    ) -> None:
        """Store ``spec`` as channel ``name`` (``deleted``: as a tombstone that keeps the
        channel's last spec) and log ``activity``."""
        notify = self._db.dialect == "postgresql"
        await self._db.run(_write, name, spec, deleted, activity, notify)
