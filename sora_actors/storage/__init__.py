"""Persistence: the only room of sora-actors where asyncio exists.

Callers get `Storage` from `open_storage` and call whole units of work on it; they never
see a connection, a transaction or a driver's exception.
"""

from ..lifecycle import TERMINAL_STATUSES
from .errors import (
    Conflict,
    DatabaseInUse,
    Fault,
    SchemaTooNew,
    StorageError,
    StorageFull,
    StorageUnavailable,
    classify,
)
from .migrations import latest_version
from .operations import LogEntry, LogQuery
from .records import Activity, ContentRecord, NewTask, Task, TaskPage, User
from .store import Storage, open_storage
from .tasks import StaleTask

__all__ = [
    "TERMINAL_STATUSES",
    "Activity",
    "Conflict",
    "ContentRecord",
    "DatabaseInUse",
    "Fault",
    "LogEntry",
    "LogQuery",
    "NewTask",
    "SchemaTooNew",
    "StaleTask",
    "Storage",
    "StorageError",
    "StorageFull",
    "StorageUnavailable",
    "Task",
    "TaskPage",
    "User",
    "classify",
    "latest_version",
    "open_storage",
]
