"""PostgreSQL: `databases` + asyncpg on the asyncio side of the bridge.

`databases` keeps the pool and the transactions; statements go to asyncpg's connection
directly, compiled once per shape (see statements.py), so asyncpg's own prepared-statement
cache sees the same SQL every time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Mapping, Sequence
from typing import Any

import databases
from sqlalchemy.sql.elements import ClauseElement

from .bridge import AsyncioBridge
from .errors import StorageUnavailable
from .sqlite_engine import Call
from .statements import Row, Statements, make_rows

COMMAND_TIMEOUT_SECONDS = 30.0
UNIT_TIMEOUT_SECONDS = 60.0
DISCONNECT_TIMEOUT_SECONDS = 5.0


class PostgresConnection:
    """What a unit of work gets on PostgreSQL: asyncpg's connection behind the contract."""

    def __init__(self, raw: Any, statements: Statements) -> None:
        self._raw = raw
        self._statements = statements
        self.raw_connection = raw  # for the rare unit that needs asyncpg itself

    async def execute(
        self, query: str | ClauseElement, values: Mapping[str, Any] | None = None
    ) -> Any:
        prepared, args = self._statements.prepare(query, values)
        # As `databases` did on asyncpg: the first value of the first row (None if none).
        return await self._raw.fetchval(prepared.sql, *args)

    async def execute_many(self, query: str, values: Sequence[Mapping[str, Any]]) -> None:
        if values:
            prepared, _ = self._statements.prepare(query, values[0])
            names = prepared.names or ()
            await self._raw.executemany(
                prepared.sql, [[entry[name] for name in names] for entry in values]
            )

    async def fetch_all(
        self, query: str | ClauseElement, values: Mapping[str, Any] | None = None
    ) -> list[Row]:
        prepared, args = self._statements.prepare(query, values)
        records = await self._raw.fetch(prepared.sql, *args)
        if not records:
            return []
        return make_rows(prepared, list(records[0].keys()), [tuple(r) for r in records])

    async def fetch_one(
        self, query: str | ClauseElement, values: Mapping[str, Any] | None = None
    ) -> Row | None:
        prepared, args = self._statements.prepare(query, values)
        record = await self._raw.fetchrow(prepared.sql, *args)
        if record is None:
            return None
        return make_rows(prepared, list(record.keys()), [tuple(record)])[0]

    async def fetch_val(
        self, query: str | ClauseElement, values: Mapping[str, Any] | None = None, column: int = 0
    ) -> Any:
        row = await self.fetch_one(query, values)
        return None if row is None else row[column]


class _AioPostgres:
    """The asyncio half: owns the `databases.Database` (the pool)."""

    def __init__(self, url: str) -> None:
        # command_timeout bounds every statement in real time.
        self.db = databases.Database(url, command_timeout=COMMAND_TIMEOUT_SECONDS)
        self.statements = Statements("postgresql")

    async def connect(self) -> None:
        await self.db.connect()
        # Fail now, with a clear error, rather than on the first request.
        async with self.db.connection() as conn:
            await conn.execute("SELECT 1")

    async def disconnect(self) -> None:
        try:
            # asyncpg's Pool.close() waits for every connection to come back, which a
            # connection broken by a database restart may never do: shutdown must not hang.
            await asyncio.wait_for(self.db.disconnect(), DISCONNECT_TIMEOUT_SECONDS)
        except TimeoutError:
            pool = getattr(getattr(self.db, "_backend", None), "_pool", None)
            if pool is not None:
                pool.terminate()

    async def _bounded(self, work: Coroutine[Any, Any, Any]) -> Any:
        """No unit may wait forever (a pool starved by an outage, say). The bound lives on
        the asyncio side because the Trio side shields units."""
        try:
            return await asyncio.wait_for(work, UNIT_TIMEOUT_SECONDS)
        except TimeoutError:
            raise StorageUnavailable(
                f"the database did not answer within {UNIT_TIMEOUT_SECONDS:.0f} s"
            ) from None

    async def unit(self, call: Call, transaction: bool) -> Any:
        return await self._bounded(self._unit(call, transaction))

    async def _unit(self, call: Call, transaction: bool) -> Any:
        fn, args, kwargs = call
        async with self.db.connection() as conn:
            wrapped = PostgresConnection(conn.raw_connection, self.statements)
            if not transaction:
                return await fn(wrapped, *args, **kwargs)
            async with conn.transaction():
                return await fn(wrapped, *args, **kwargs)


class PostgresEngine:
    """The Trio half: every call crosses the bridge once.

    No group commit here: the pool runs transactions side by side already, and a batch
    that locks many task rows at once deadlocks against the lease renewal, which locks
    many rows too (measured: 40P01 within seconds in test_crash_recovery).
    """

    dialect = "postgresql"
    batch = None  # see the class docstring

    def __init__(self, url: str, bridge: AsyncioBridge) -> None:
        self.url = url
        self.bridge = bridge
        self._aio = _AioPostgres(url)

    async def connect(self) -> None:
        await self.bridge.run(self._aio.connect)

    async def disconnect(self) -> None:
        await self.bridge.run(self._aio.disconnect)

    async def unit(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return await self.bridge.run(self._aio.unit, (fn, args, kwargs), True)

    async def read(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return await self.bridge.run(self._aio.unit, (fn, args, kwargs), False)
