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
from .records import (
    Activity,
    ContentRecord,
    NewSession,
    NewTask,
    SessionState,
    Task,
    TaskPage,
    User,
    UserChanges,
    UserDetail,
    UserSummary,
)
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
    "NewSession",
    "NewTask",
    "SchemaTooNew",
    "SessionState",
    "StaleTask",
    "Storage",
    "StorageError",
    "StorageFull",
    "StorageUnavailable",
    "Task",
    "TaskPage",
    "User",
    "UserChanges",
    "UserDetail",
    "UserSummary",
    "classify",
    "latest_version",
    "open_storage",
]
