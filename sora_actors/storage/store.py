"""`Storage`: the one object the rest of sora-actors holds to reach the database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from .accounts import AccountStore
from .content import ContentRecords
from .database import Database, open_database
from .leases import LeaseStore
from .tasks import TaskStore


async def _ping(conn: Any) -> None:
    await conn.fetch_val("SELECT 1")


class Storage:
    """Groups the stores; every method is a whole unit of work, called from Trio."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self.accounts = AccountStore(database)
        self.tasks = TaskStore(database)
        self.leases = LeaseStore(database)
        self.content = ContentRecords(database)

    @property
    def dialect(self) -> str:
        return self.database.dialect

    async def ping(self) -> None:
        """Raise StorageUnavailable when the database does not answer."""
        await self.database.read(_ping)


@asynccontextmanager
async def open_storage(
    url: str, *, migrate: bool = True, exclusive: bool = True
) -> AsyncIterator[Storage]:
    """Open the database, bring its schema up to date (unless told not to), yield a Storage."""
    async with open_database(url, exclusive=exclusive) as database:
        if migrate:
            await database.migrate()
        yield Storage(database)
