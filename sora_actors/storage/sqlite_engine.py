"""SQLite through the standard library's `sqlite3`, on one thread at a time, called from Trio.

The old path went Trio -> trio-asyncio -> `databases` -> aiosqlite's thread -> sqlite3: two
hops where one does (see the README's storage figures). Here a whole unit of work runs in
ONE `trio.to_thread.run_sync` call, under a CapacityLimiter(1) (SQLite has one writer and
this process keeps one connection): BEGIN, the unit, COMMIT.

Units are asyncio-style coroutine functions (``async def _unit(conn, ...)``), shared with
PostgreSQL. On this path their connection's methods never suspend, so the worker thread
drives the coroutine to its end with a single ``send(None)``; a unit that awaits anything
else is a bug and fails loudly.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Coroutine, Mapping, Sequence
from pathlib import Path
from typing import Any

import outcome
import trio
from sqlalchemy.sql.elements import ClauseElement

from .statements import Prepared, Row, Statements, make_rows

PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA foreign_keys=ON",
    "PRAGMA busy_timeout=5000",
)

Call = tuple[Callable[..., Coroutine[Any, Any, Any]], tuple[Any, ...], dict[str, Any]]


class NotSynchronous(RuntimeError):
    """A SQLite unit of work awaited something other than its connection."""


def drive(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine that never suspends to its end; its result."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value
    coroutine.close()
    raise NotSynchronous("a SQLite unit of work awaited something other than its connection")


class SqliteConnection:
    """What a unit of work gets on SQLite: awaitable methods that run at once."""

    def __init__(self, raw: sqlite3.Connection, statements: Statements) -> None:
        self._raw = raw
        self._statements = statements

    def _run(
        self, query: str | ClauseElement, values: Mapping[str, Any] | None
    ) -> tuple[Prepared, sqlite3.Cursor]:
        prepared, params = self._statements.prepare(query, values)
        return prepared, self._raw.execute(prepared.sql, params)

    def _rows(self, query: str | ClauseElement, values: Mapping[str, Any] | None) -> list[Row]:
        prepared, cursor = self._run(query, values)
        raw = cursor.fetchall()
        if not raw:
            return []
        return make_rows(prepared, [column[0] for column in cursor.description], raw)

    async def execute(
        self, query: str | ClauseElement, values: Mapping[str, Any] | None = None
    ) -> Any:
        return self._run(query, values)[1].lastrowid

    async def execute_many(self, query: str, values: Sequence[Mapping[str, Any]]) -> None:
        if values:
            prepared, _ = self._statements.prepare(query, values[0])
            self._raw.executemany(prepared.sql, values)

    async def fetch_all(
        self, query: str | ClauseElement, values: Mapping[str, Any] | None = None
    ) -> list[Row]:
        return self._rows(query, values)

    async def fetch_one(
        self, query: str | ClauseElement, values: Mapping[str, Any] | None = None
    ) -> Row | None:
        rows = self._rows(query, values)
        return rows[0] if rows else None

    async def fetch_val(
        self, query: str | ClauseElement, values: Mapping[str, Any] | None = None, column: int = 0
    ) -> Any:
        rows = self._rows(query, values)
        return rows[0][column] if rows else None


class SqliteEngine:
    """One `sqlite3` connection for the process; every call holds the limiter."""

    dialect = "sqlite"

    def __init__(self, url: str, path: Path | None) -> None:
        self.url = url
        self._path = path
        self._limiter = trio.CapacityLimiter(1)
        self._raw: sqlite3.Connection | None = None
        self._conn: SqliteConnection | None = None

    async def connect(self) -> None:
        await trio.to_thread.run_sync(self._open, limiter=self._limiter)

    def _open(self) -> None:
        # isolation_level=None: we say BEGIN and COMMIT ourselves, once per unit.
        raw = sqlite3.connect(
            str(self._path) if self._path else ":memory:",
            isolation_level=None,
            check_same_thread=False,
        )
        try:
            for pragma in PRAGMAS:
                raw.execute(pragma)
        except BaseException:
            raw.close()
            raise
        self._raw = raw
        self._conn = SqliteConnection(raw, Statements("sqlite"))

    async def disconnect(self) -> None:
        await trio.to_thread.run_sync(self._close, limiter=self._limiter)

    def _close(self) -> None:
        if self._raw is not None:
            if self._raw.in_transaction:
                self._raw.rollback()
            self._raw.close()
            self._raw = None

    async def unit(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return await trio.to_thread.run_sync(
            self._unit, (fn, args, kwargs), True, limiter=self._limiter
        )

    async def read(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """A single-statement read: atomic by itself, so no BEGIN/COMMIT."""
        return await trio.to_thread.run_sync(
            self._unit, (fn, args, kwargs), False, limiter=self._limiter
        )

    async def batch(self, calls: list[Call]) -> list[outcome.Outcome[Any]]:
        """Several units in ONE transaction, each in its own savepoint (see group commit)."""
        result: list[outcome.Outcome[Any]] = await trio.to_thread.run_sync(
            self._batch, calls, limiter=self._limiter
        )
        return result

    def _ready(self) -> tuple[sqlite3.Connection, SqliteConnection]:
        raw, conn = self._raw, self._conn
        if raw is None or conn is None:
            raise sqlite3.ProgrammingError("the database is closed")
        if raw.in_transaction:  # defensive: never start inside a leftover transaction
            raw.rollback()
        return raw, conn

    def _unit(self, call: Call, transaction: bool) -> Any:
        raw, conn = self._ready()
        fn, args, kwargs = call
        if not transaction:
            return drive(fn(conn, *args, **kwargs))
        raw.execute("BEGIN")
        try:
            result = drive(fn(conn, *args, **kwargs))
            raw.execute("COMMIT")
        except BaseException:
            if raw.in_transaction:
                raw.rollback()
            raise
        return result

    def _batch(self, calls: list[Call]) -> list[outcome.Outcome[Any]]:
        raw, conn = self._ready()
        results: list[outcome.Outcome[Any]] = []
        raw.execute("BEGIN")
        try:
            for fn, args, kwargs in calls:
                raw.execute("SAVEPOINT unit")
                try:
                    value = drive(fn(conn, *args, **kwargs))
                except Exception as error:
                    raw.execute("ROLLBACK TO SAVEPOINT unit")
                    raw.execute("RELEASE SAVEPOINT unit")
                    results.append(outcome.Error(error))
                else:
                    raw.execute("RELEASE SAVEPOINT unit")
                    results.append(outcome.Value(value))
            raw.execute("COMMIT")
        except BaseException:
            if raw.in_transaction:
                raw.rollback()
            raise
        return results
