"""`Storage`: the one object the rest of sora-actors holds to reach the database."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio

from .accounts import AccountStore
from .apikeys import ApiKeyStore
from .channel_rows import ChannelRows
from .copies import ContentRecords
from .database import Database, open_database, sqlite_path
from .errors import StorageFull
from .leases import LeaseStore
from .licences import LicenceStore
from .operations import OperationsStore
from .sysconfig import ConfigRows
from .tasks import TaskStore

# Free space on SQLite's file system that counts as "room to write again".
ROOM_BYTES = 1024 * 1024


async def _ping(conn: Any) -> None:
    await conn.fetch_val("SELECT 1")


async def _write_probe(conn: Any) -> None:
    # Rewrites a tiny row as it is: needs (and so proves) room to write on both databases.
    await conn.execute("UPDATE schema_version SET version = version")


class Storage:
    """Groups the stores; every method is a whole unit of work, called from Trio."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self.accounts = AccountStore(database)
        self.tasks = TaskStore(database)
        self.leases = LeaseStore(database)
        self.content = ContentRecords(database)
        self.licences = LicenceStore(database)
        self.operations = OperationsStore(database)
        self.config = ConfigRows(database)
        self.api_keys = ApiKeyStore(database)
        self.channels = ChannelRows(database)

    @property
    def dialect(self) -> str:
        return self.database.dialect

    async def ping(self) -> None:
        """Raise StorageUnavailable when the database does not answer."""
        await self.database.read(_ping)

    @property
    def full_since(self) -> int | None:
        """When a write last failed for lack of space (wall ms); None when writes work."""
        return self.database.full_since

    async def writable(self) -> bool:
        """Whether the database takes writes again after one failed for lack of space
        (True at once while none has). SQLite: room on its file system (a tiny probe write
        could fit in the tail a failed transaction left in the WAL, and prove nothing);
        PostgreSQL: a probe write."""
        if self.database.full_since is None:
            return True
        if self.dialect == "sqlite":
            path = sqlite_path(self.database.url)
            if path is not None:
                stat = await trio.to_thread.run_sync(os.statvfs, path.parent)
                if stat.f_bavail * stat.f_frsize < ROOM_BYTES:
                    return False
        else:
            try:
                await self.database.run(_write_probe)
            except StorageFull:
                return False
        self.database.full_since = None
        return True


@asynccontextmanager
async def open_storage(
    url: str, *, migrate: bool = True, exclusive: bool = True
) -> AsyncIterator[Storage]:
    """Open the database, bring its schema up to date (unless told not to), yield a Storage."""
    async with open_database(url, exclusive=exclusive) as database:
        if migrate:
            await database.migrate()
        yield Storage(database)
