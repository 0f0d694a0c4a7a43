"""Opening the database and running whole units of work on it.

A unit of work is a coroutine function ``fn(connection, *args)`` using
``connection.execute / fetch_one / fetch_all / fetch_val / execute_many``; `Database.run`
runs it inside one transaction. Two engines sit under that one interface:

- SQLite: the standard library's `sqlite3` on a worker thread (sqlite_engine.py), ONE
  connection for the process, units one at a time (SQLite has a single writer anyway);
- PostgreSQL: `databases` + asyncpg through the trio-asyncio bridge (postgres_engine.py),
  a pooled connection per unit.

`Database.run_grouped` queues a unit for group commit (group_commit.py; SQLite): what
arrives while a commit is in flight shares the next transaction.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import IO, Any, Concatenate, ParamSpec, Protocol, TypeVar

import outcome
import trio

from ..clock import wall_ms
from . import migrations
from .bridge import AsyncioBridge, open_bridge, sole_exception
from .errors import DatabaseInUse, StorageError, StorageFull, StorageUnavailable, translate
from .group_commit import GroupCommitter
from .postgres_engine import PostgresEngine
from .sqlite_engine import Call, SqliteEngine

P = ParamSpec("P")
T = TypeVar("T")
Unit = Callable[Concatenate[Any, P], Awaitable[T]]


class Engine(Protocol):
    dialect: str
    url: str

    async def connect(self) -> None: ...

    async def disconnect(self) -> None: ...

    async def unit(self, fn: Any, *args: Any, **kwargs: Any) -> Any: ...

    async def read(self, fn: Any, *args: Any, **kwargs: Any) -> Any: ...

    # Several units in one transaction, a savepoint each (None: the engine has no group
    # commit, and grouped units run alone).
    @property
    def batch(self) -> Callable[[list[Call]], Awaitable[list[outcome.Outcome[Any]]]] | None: ...


def dialect_of(url: str) -> str:
    if url.startswith("sqlite"):
        return "sqlite"
    if url.startswith("postgresql"):
        return "postgresql"
    raise StorageError(f"unsupported database URL scheme: {url.split(':', 1)[0]}")


def sqlite_path(url: str) -> Path | None:
    """The file behind a SQLite URL (None for an in-memory database)."""
    path = url.split("://", 1)[1]
    if path.startswith("/"):
        path = path[1:]
    path = path.split("?", 1)[0]
    if path in ("", ":memory:"):
        return None
    return Path(path)


class Database:
    """Runs units of work on the engine and translates errors."""

    def __init__(self, engine: Engine, bridge: AsyncioBridge | None = None) -> None:
        self._bridge = bridge
        self._engine = engine
        self.committer = GroupCommitter(engine) if engine.batch is not None else None
        # When a write last failed for lack of space (wall ms), until a write succeeds again:
        # what /health and /metrics report. Cleared by `Storage.writable`.
        self.full_since: int | None = None

    @property
    def dialect(self) -> str:
        return self._engine.dialect

    @property
    def url(self) -> str:
        return self._engine.url

    @property
    def bridge(self) -> AsyncioBridge:
        """For the few long-lived asyncio jobs storage runs itself (the LISTEN connection;
        PostgreSQL only: SQLite runs without an asyncio loop)."""
        if self._bridge is None:
            raise StorageError("no asyncio bridge on SQLite")
        return self._bridge

    async def run(self, fn: Unit[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``fn(connection, ...)`` as one transaction."""
        result: T = await self._call(self._engine.unit, fn, *args, **kwargs)
        return result

    async def read(self, fn: Unit[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``fn(connection, ...)``, which issues ONE read statement, outside a transaction."""
        result: T = await self._call(self._engine.read, fn, *args, **kwargs)
        return result

    async def run_grouped(self, fn: Unit[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``fn(connection, ...)`` in a transaction it may share with other grouped
        units (each in its own savepoint); returns once that transaction committed."""
        mode = self._engine.unit if self.committer is None else self.committer.submit
        result: T = await self._call(mode, fn, *args, **kwargs)
        return result

    async def _call(self, mode: Any, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            # Shielded: a unit of work, once started, runs to its commit or rollback. Cancelling
            # it halfway (a client hanging up mid-request, a nursery shutting down) would leave
            # SQLite's shared connection inside an open transaction. Units are short; the
            # real-time bound is the driver's command timeout, on the asyncio side.
            with trio.CancelScope(shield=True):
                return await mode(fn, *args, **kwargs)
        except Exception as error:
            mapped = translate(error)
            if isinstance(mapped, StorageFull) and self.full_since is None:
                self.full_since = wall_ms()
            if mapped is None or mapped is error:
                raise
            raise mapped from error

    async def migrate(self) -> list[int]:
        """Apply pending migrations; the list of versions applied."""
        return await self.run(migrations.apply, self._engine.dialect)

    async def schema_version(self) -> int:
        async def read(conn: Any) -> int:
            try:
                return int(await conn.fetch_val("SELECT MAX(version) FROM schema_version") or 0)
            except Exception:
                return 0

        return await self.run(read)


def _lock_sqlite_file(path: Path) -> IO[str]:
    """Hold an exclusive lock beside the SQLite file for this process's lifetime."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = (path.parent / (path.name + ".lock")).open("a+")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise DatabaseInUse(
            f"another sora-actors process is already using {path}; several instances "
            "need PostgreSQL (SORA_DATABASE_URL=postgresql+asyncpg://...)"
        ) from None
    handle.truncate(0)
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


@asynccontextmanager
async def open_database(url: str, *, exclusive: bool = True) -> AsyncIterator[Database]:
    """Connect (SQLite: create the file and its folder) and disconnect at the end.

    ``exclusive`` (SQLite only) refuses a second process on the same file.
    """
    lock: IO[str] | None = None
    if dialect_of(url) == "sqlite":
        path = sqlite_path(url)
        if path is not None:
            if exclusive:
                lock = _lock_sqlite_file(path)
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
        try:
            async with _serving(SqliteEngine(url, path)) as database:
                yield database
        finally:
            if lock is not None:
                lock.close()
        return
    async with open_bridge() as bridge, _serving(PostgresEngine(url, bridge), bridge) as database:
        yield database


@asynccontextmanager
async def _serving(engine: Engine, bridge: AsyncioBridge | None = None) -> AsyncIterator[Database]:
    """Connect, run the group committer beside the caller, drain it and disconnect."""
    database = Database(engine, bridge)
    try:
        await engine.connect()
    except Exception as error:
        mapped = translate(error)
        raise (mapped or StorageUnavailable(f"cannot open the database: {error}")) from error
    committer = database.committer
    try:
        async with trio.open_nursery() as nursery:
            if committer is not None:
                nursery.start_soon(committer.run)
            try:
                yield database
            finally:
                if committer is not None:
                    committer.close()
    except BaseExceptionGroup as group:
        # The nursery wraps whatever the caller's block raised: hand back the one error.
        leaf = sole_exception(group)
        if leaf is group:
            raise
        raise leaf from None
    finally:
        # Shielded: closing must finish even while the service is being cancelled.
        with trio.CancelScope(shield=True):
            await engine.disconnect()
