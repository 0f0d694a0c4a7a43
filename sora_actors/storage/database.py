"""Opening the database and running whole units of work on it (the asyncio side).

A unit of work is an asyncio coroutine function ``fn(connection, *args)``; `Database.run`
runs it inside one transaction, in one asyncio coroutine, through the bridge.

SQLite keeps ONE connection for the whole process and runs units one at a time: SQLite has
a single writer anyway, and `databases` would otherwise open a new file handle and a new
aiosqlite thread for every call. PostgreSQL takes a pooled connection per unit.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import IO, Any, Concatenate, ParamSpec, TypeVar

import databases
import trio

from ..clock import wall_ms
from . import migrations
from .bridge import AsyncioBridge, open_bridge
from .errors import DatabaseInUse, StorageError, StorageFull, StorageUnavailable, translate

P = ParamSpec("P")
T = TypeVar("T")
Unit = Callable[Concatenate[Any, P], Awaitable[T]]

COMMAND_TIMEOUT_SECONDS = 30.0
UNIT_TIMEOUT_SECONDS = 60.0
DISCONNECT_TIMEOUT_SECONDS = 5.0

_SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA foreign_keys=ON",
    "PRAGMA busy_timeout=5000",
)


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


class _AioEngine:
    """The asyncio half: owns the `databases.Database` and the SQLite connection."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.dialect = dialect_of(url)
        # command_timeout bounds every PostgreSQL statement in real time.
        options: dict[str, Any] = (
            {"command_timeout": COMMAND_TIMEOUT_SECONDS} if self.dialect == "postgresql" else {}
        )
        self.db = databases.Database(url, **options)
        self._sqlite_conn: Any = None
        self._sqlite_lock: asyncio.Lock | None = None

    async def connect(self) -> None:
        await self.db.connect()
        if self.dialect == "sqlite":
            self._sqlite_conn = self.db.connection()
            await self._sqlite_conn.__aenter__()
            self._sqlite_lock = asyncio.Lock()
            for pragma in _SQLITE_PRAGMAS:
                await self._sqlite_conn.execute(pragma)
        else:
            # Fail now, with a clear error, rather than on the first request.
            async with self.db.connection() as conn:
                await conn.execute("SELECT 1")

    async def disconnect(self) -> None:
        if self._sqlite_conn is not None:
            raw = self._sqlite_conn.raw_connection
            await self._sqlite_conn.__aexit__(None, None, None)
            # A COMMIT that failed (a full disk) leaves `databases`' use count of the
            # connection above zero, so the line above may not close it: close it anyway, or
            # aiosqlite's worker thread outlives the loop and the process never exits.
            await raw.close()
            self._sqlite_conn = None
        if self.dialect == "sqlite":
            await self.db.disconnect()
            return
        try:
            # asyncpg's Pool.close() waits for every connection to come back, which a
            # connection broken by a database restart may never do: shutdown must not hang.
            await asyncio.wait_for(self.db.disconnect(), DISCONNECT_TIMEOUT_SECONDS)
        except TimeoutError:
            pool = getattr(getattr(self.db, "_backend", None), "_pool", None)
            if pool is not None:
                pool.terminate()

    async def unit(self, fn: Unit[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        if self._sqlite_lock is not None:
            async with self._sqlite_lock:
                raw = self._sqlite_conn.raw_connection
                if raw.in_transaction:  # defensive: never start inside a leftover transaction
                    await raw.rollback()
                async with self._sqlite_conn.transaction():
                    return await fn(self._sqlite_conn, *args, **kwargs)
        return await self._bounded(self._pg_unit(fn, *args, **kwargs))

    async def _pg_unit(self, fn: Unit[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        async with self.db.connection() as conn, conn.transaction():
            return await fn(conn, *args, **kwargs)

    async def _bounded(self, work: Coroutine[Any, Any, T]) -> T:
        """PostgreSQL: no unit may wait forever (a pool starved by an outage, say). The
        bound lives on the asyncio side because the Trio side shields units. Not for
        SQLite: its units are local and virtual-time tests must not see an asyncio timer."""
        try:
            return await asyncio.wait_for(work, UNIT_TIMEOUT_SECONDS)
        except TimeoutError:
            raise StorageUnavailable(
                f"the database did not answer within {UNIT_TIMEOUT_SECONDS:.0f} s"
            ) from None

    async def read(self, fn: Unit[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """A single-statement read: atomic by itself, so no BEGIN/COMMIT round trips."""
        if self._sqlite_lock is not None:
            async with self._sqlite_lock:
                return await fn(self._sqlite_conn, *args, **kwargs)
        return await self._bounded(self._pg_read(fn, *args, **kwargs))

    async def _pg_read(self, fn: Unit[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        async with self.db.connection() as conn:
            return await fn(conn, *args, **kwargs)


class Database:
    """The Trio half: runs units of work through the bridge and translates errors."""

    def __init__(self, bridge: AsyncioBridge, engine: _AioEngine) -> None:
        self._bridge = bridge
        self._engine = engine
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
        """For the few long-lived asyncio jobs storage runs itself (the LISTEN connection)."""
        return self._bridge

    async def run(self, fn: Unit[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``fn(connection, ...)`` as one transaction."""
        result: T = await self._call(self._engine.unit, fn, *args, **kwargs)
        return result

    async def read(self, fn: Unit[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``fn(connection, ...)``, which issues ONE read statement, outside a transaction."""
        result: T = await self._call(self._engine.read, fn, *args, **kwargs)
        return result

    async def _call(self, mode: Any, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            # Shielded: a unit of work, once started, runs to its commit or rollback. Cancelling
            # it halfway (a client hanging up mid-request, a nursery shutting down) would leave
            # SQLite's shared connection inside an open transaction. Units are short; the
            # real-time bound is the driver's command timeout, on the asyncio side.
            with trio.CancelScope(shield=True):
                return await self._bridge.run(mode, fn, *args, **kwargs)
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
        async with open_bridge() as bridge:
            engine = _AioEngine(url)
            database = Database(bridge, engine)
            try:
                await bridge.run(engine.connect)
            except Exception as error:
                mapped = translate(error)
                raise (
                    mapped or StorageUnavailable(f"cannot open the database: {error}")
                ) from error
            try:
                yield database
            finally:
                # Shielded: closing must finish even while the service is being cancelled.
                with trio.CancelScope(shield=True):
                    await bridge.run(engine.disconnect)
    finally:
        if lock is not None:
            lock.close()
