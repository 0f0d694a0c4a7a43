"""Persistence: the only room of sora-actors where asyncio exists.

Callers get `Storage` from `open_storage` and call whole units of work on it; they never
see a connection, a transaction or a driver's exception.
"""

from .errors import Conflict, DatabaseInUse, SchemaTooNew, StorageError, StorageUnavailable
from .migrations import latest_version
from .records import Activity, User
from .store import Storage, open_storage

__all__ = [
    "Activity",
    "Conflict",
    "DatabaseInUse",
    "SchemaTooNew",
    "Storage",
    "StorageError",
    "StorageUnavailable",
    "User",
    "latest_version",
    "open_storage",
]
