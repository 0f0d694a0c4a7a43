"""What storage raises; callers never see a driver's exception type.

`classify` sorts every storage failure (SQLite, PostgreSQL, the file system under either)
into four kinds, and everything that reacts to one (the HTTP error mapping, the claim loop,
the supervisor, the content keeper) decides by kind:

- UNAVAILABLE: the database cannot be reached or is busy; retry later.
- FULL: no space left to write; retry once space returns (the process stays up).
- CONFLICT: a uniqueness rule or a concurrent transaction won; this unit of work lost.
- BUG: anything else (an SQL error, a missing table, a broken constraint): our mistake, or
  a damaged database; let it crash loudly.
"""

from __future__ import annotations

import enum
import errno
import sqlite3


class StorageError(Exception):
    """Base of everything storage raises on purpose."""


class StorageUnavailable(StorageError):
    """The database cannot be reached (or stopped answering)."""


class StorageFull(StorageUnavailable):
    """No space left to write (the database's disk, or the content store's).

    A kind of unavailability: whoever retries an outage retries this too, and it ends on its
    own once space returns. Callers that can say more (507, "waiting for space") catch it first.
    """


class SchemaTooNew(StorageError):
    """The database was migrated by a newer sora-actors; this one must not touch it."""


class Conflict(StorageError):
    """A uniqueness rule was broken; ``field`` names the value that clashed."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class DatabaseInUse(StorageError):
    """Another process already serves this SQLite file."""


class Fault(enum.StrEnum):
    """What kind of storage failure an exception is (see the module docstring)."""

    UNAVAILABLE = "unavailable"
    FULL = "full"
    CONFLICT = "conflict"
    BUG = "bug"


# asyncpg exceptions without a SQLSTATE that mean "cannot talk to the database now".
_UNAVAILABLE_NAMES = frozenset(
    {
        "ConnectionDoesNotExistError",
        "CannotConnectNowError",
        "ConnectionFailureError",
        "InterfaceError",
        "TooManyConnectionsError",
        "AdminShutdownError",
        "CrashShutdownError",
        "InternalClientError",  # asyncpg: a connection left in a broken state by an outage
    }
)

# PostgreSQL SQLSTATEs, most specific first: 53100 disk_full; unique_violation, and the
# transaction conflicts a retry resolves (serialization_failure, deadlock_detected); then the
# classes that mean "cannot talk to the database now": connection exceptions (08),
# insufficient resources (53), operator intervention (57P: shutdown, restart), the database
# missing (3D000) or closed to connections (55000), a lock not available (55P03), a read-only
# standby (25006) and an I/O error under the server (58030).
_PG_FAULTS: tuple[tuple[str, Fault], ...] = (
    ("53100", Fault.FULL),
    ("23505", Fault.CONFLICT),
    ("40001", Fault.CONFLICT),
    ("40P01", Fault.CONFLICT),
    ("08", Fault.UNAVAILABLE),
    ("53", Fault.UNAVAILABLE),
    ("57P", Fault.UNAVAILABLE),
    ("3D000", Fault.UNAVAILABLE),
    ("55000", Fault.UNAVAILABLE),
    ("55P03", Fault.UNAVAILABLE),
    ("25006", Fault.UNAVAILABLE),
    ("58030", Fault.UNAVAILABLE),
)

# SQLite primary result codes (the low byte of an extended code).
_SQLITE_FAULTS: dict[int, Fault] = {
    sqlite3.SQLITE_FULL: Fault.FULL,
    sqlite3.SQLITE_BUSY: Fault.UNAVAILABLE,  # "database is locked" past busy_timeout
    sqlite3.SQLITE_LOCKED: Fault.UNAVAILABLE,
    sqlite3.SQLITE_IOERR: Fault.UNAVAILABLE,  # "disk I/O error"
    sqlite3.SQLITE_CANTOPEN: Fault.UNAVAILABLE,
    sqlite3.SQLITE_NOMEM: Fault.UNAVAILABLE,
    sqlite3.SQLITE_READONLY: Fault.UNAVAILABLE,  # a file system remounted read-only
    sqlite3.SQLITE_PROTOCOL: Fault.UNAVAILABLE,
}
_SQLITE_UNIQUE = frozenset({sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY})
# When a driver gives no code: its message.
_SQLITE_MESSAGES: tuple[tuple[str, Fault], ...] = (
    ("database or disk is full", Fault.FULL),
    ("database is locked", Fault.UNAVAILABLE),
    ("disk I/O error", Fault.UNAVAILABLE),
    ("unable to open", Fault.UNAVAILABLE),
)
_NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT})


def classify(error: BaseException) -> Fault:
    """The kind of storage failure ``error`` is; BUG for anything not known to be otherwise."""
    if isinstance(error, StorageFull):
        return Fault.FULL
    if isinstance(error, StorageUnavailable):
        return Fault.UNAVAILABLE
    if isinstance(error, Conflict):
        return Fault.CONFLICT
    if isinstance(error, sqlite3.Error):
        return _classify_sqlite(error)
    sqlstate = str(getattr(error, "sqlstate", "") or "")
    if sqlstate:
        for prefix, fault in _PG_FAULTS:
            if sqlstate.startswith(prefix):
                return fault
        return Fault.BUG
    if isinstance(error, OSError):
        return Fault.FULL if error.errno in _NO_SPACE else Fault.UNAVAILABLE
    if type(error).__name__ in _UNAVAILABLE_NAMES:
        return Fault.UNAVAILABLE
    return Fault.BUG


def _classify_sqlite(error: sqlite3.Error) -> Fault:
    code = getattr(error, "sqlite_errorcode", None)
    if isinstance(code, int):
        if code in _SQLITE_UNIQUE:
            return Fault.CONFLICT
        return _SQLITE_FAULTS.get(code & 0xFF, Fault.BUG)
    text = str(error)
    if isinstance(error, sqlite3.IntegrityError) and "UNIQUE" in text:
        return Fault.CONFLICT
    for needle, fault in _SQLITE_MESSAGES:
        if needle in text:
            return fault
    return Fault.BUG


def translate(error: BaseException) -> StorageError | None:
    """The exception of ours for a driver's (None for a BUG: let the original propagate)."""
    if isinstance(error, StorageError):
        return error
    fault = classify(error)
    name = type(error).__name__
    if fault is Fault.FULL:
        return StorageFull(f"no space left for the database: {error}")
    if fault is Fault.UNAVAILABLE:
        detail = (
            str(error) if isinstance(error, sqlite3.Error) or hasattr(error, "sqlstate") else name
        )
        return StorageUnavailable(f"database unavailable: {detail}")
    if fault is Fault.CONFLICT:
        if "UniqueViolation" in name or isinstance(error, sqlite3.IntegrityError):
            return Conflict("unknown", "a record with the same unique value already exists")
        return Conflict("transaction", "a concurrent change won; try again")
    return None
