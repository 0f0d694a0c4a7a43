"""Every storage failure sorts into unavailable, full, conflict or bug (storage.errors).

The SQLite errors are real ones, raised by the sqlite3 module on a real file; asyncpg's
are its own exception classes, built the way its protocol builds them from a server
message (a full disk on a real PostgreSQL is not practical here).
"""

from __future__ import annotations

import errno
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from sora_actors.storage import Conflict, Fault, StorageFull, StorageUnavailable, classify
from sora_actors.storage.errors import translate


def _raised(connection: sqlite3.Connection, sql: str) -> sqlite3.Error:
    with pytest.raises(sqlite3.Error) as caught:
        connection.execute(sql)
    return caught.value


@pytest.fixture
def db(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    connection = sqlite3.connect(tmp_path / "t.db", timeout=0, isolation_level=None)
    connection.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT UNIQUE NOT NULL)")
    yield connection
    connection.close()


def test_sqlite_disk_full_is_full(db: sqlite3.Connection) -> None:
    # The file may not grow past its current pages: SQLite answers SQLITE_FULL, exactly
    # what it answers when the disk has no room left.
    pages = db.execute("PRAGMA page_count").fetchone()[0]
    db.execute(f"PRAGMA max_page_count = {pages}")
    error = _raised(db, "INSERT INTO t (v) VALUES (hex(randomblob(20000)))")
    assert "database or disk is full" in str(error)
    assert classify(error) is Fault.FULL
    assert isinstance(translate(error), StorageFull)


def test_sqlite_locked_is_unavailable(tmp_path: Path, db: sqlite3.Connection) -> None:
    db.execute("BEGIN IMMEDIATE")
    other = sqlite3.connect(tmp_path / "t.db", timeout=0, isolation_level=None)
    try:
        error = _raised(other, "INSERT INTO t (v) VALUES ('x')")
    finally:
        other.close()
        db.execute("ROLLBACK")
    assert "database is locked" in str(error)
    assert classify(error) is Fault.UNAVAILABLE
    mapped = translate(error)
    assert type(mapped) is StorageUnavailable


def test_sqlite_io_error_is_unavailable() -> None:
    # SQLite's own I/O failure (a dying disk) cannot be provoked on demand: the exception
    # as the module raises it, with its extended code, and without one (message only).
    error = sqlite3.OperationalError("disk I/O error")
    assert classify(error) is Fault.UNAVAILABLE
    error.sqlite_errorcode = 778  # SQLITE_IOERR_WRITE
    assert classify(error) is Fault.UNAVAILABLE
    assert classify(sqlite3.OperationalError("database or disk is full")) is Fault.FULL


def test_sqlite_unique_violation_is_conflict(db: sqlite3.Connection) -> None:
    db.execute("INSERT INTO t (v) VALUES ('same')")
    error = _raised(db, "INSERT INTO t (v) VALUES ('same')")
    assert classify(error) is Fault.CONFLICT
    mapped = translate(error)
    assert isinstance(mapped, Conflict) and mapped.field == "unknown"


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO t (v) VALUES (NULL)",  # NOT NULL: a bug, not a clash
        "SELECT * FROM no_such_table",
        "SELEKT 1",
    ],
)
def test_sqlite_mistakes_are_bugs(db: sqlite3.Connection, sql: str) -> None:
    error = _raised(db, sql)
    assert classify(error) is Fault.BUG
    assert translate(error) is None  # propagates as it is: the actor crashes, loudly


def _pg(cls: type[asyncpg.PostgresError], message: str) -> asyncpg.PostgresError:
    # How asyncpg's protocol builds a server error: the class picked by SQLSTATE.
    built = asyncpg.PostgresError.new({"C": cls.sqlstate, "M": message, "S": "ERROR"})
    assert type(built) is cls
    return built


@pytest.mark.parametrize(
    ("cls", "fault"),
    [
        (asyncpg.DiskFullError, Fault.FULL),
        (asyncpg.OutOfMemoryError, Fault.UNAVAILABLE),
        (asyncpg.TooManyConnectionsError, Fault.UNAVAILABLE),
        (asyncpg.AdminShutdownError, Fault.UNAVAILABLE),
        (asyncpg.CannotConnectNowError, Fault.UNAVAILABLE),
        (asyncpg.ConnectionFailureError, Fault.UNAVAILABLE),
        (asyncpg.InvalidCatalogNameError, Fault.UNAVAILABLE),
        (asyncpg.LockNotAvailableError, Fault.UNAVAILABLE),
        (asyncpg.ReadOnlySQLTransactionError, Fault.UNAVAILABLE),
        (asyncpg.UniqueViolationError, Fault.CONFLICT),
        (asyncpg.SerializationError, Fault.CONFLICT),
        (asyncpg.DeadlockDetectedError, Fault.CONFLICT),
        (asyncpg.UndefinedTableError, Fault.BUG),
        (asyncpg.PostgresSyntaxError, Fault.BUG),
        (asyncpg.ForeignKeyViolationError, Fault.BUG),
        (asyncpg.NotNullViolationError, Fault.BUG),
        (asyncpg.InternalServerError, Fault.BUG),
    ],
)
def test_postgresql_errors(cls: type[asyncpg.PostgresError], fault: Fault) -> None:
    error = _pg(cls, "server says no")
    assert classify(error) is fault


def test_postgresql_disk_full_translates_to_storage_full() -> None:
    error = _pg(asyncpg.DiskFullError, 'could not extend file "base/16384/16385"')
    mapped = translate(error)
    assert isinstance(mapped, StorageFull)
    assert isinstance(mapped, StorageUnavailable)  # whoever retries outages retries this too


def test_postgresql_conflicts_translate() -> None:
    unique = translate(_pg(asyncpg.UniqueViolationError, "duplicate key"))
    assert isinstance(unique, Conflict) and unique.field == "unknown"
    lost = translate(_pg(asyncpg.SerializationError, "could not serialize access"))
    assert isinstance(lost, Conflict) and lost.field == "transaction"


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        asyncpg.InterfaceError("pool is closed"),
        asyncpg.InternalClientError("got result for unknown protocol state"),
        ConnectionRefusedError(errno.ECONNREFUSED, "refused"),
        TimeoutError(),
        OSError(errno.EIO, "Input/output error"),
    ],
)
def test_connection_errors_are_unavailable(error: BaseException) -> None:
    assert classify(error) is Fault.UNAVAILABLE
    assert type(translate(error)) is StorageUnavailable


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT])
def test_no_space_from_the_file_system_is_full(code: int) -> None:
    assert classify(OSError(code, "No space left on device")) is Fault.FULL


def test_our_own_errors_keep_their_kind() -> None:
    assert classify(StorageFull("x")) is Fault.FULL
    assert classify(StorageUnavailable("x")) is Fault.UNAVAILABLE
    assert classify(Conflict("username", "taken")) is Fault.CONFLICT
    assert classify(ValueError("ours")) is Fault.BUG
