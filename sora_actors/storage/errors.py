"""What storage raises; callers never see a driver's exception type."""

from __future__ import annotations


class StorageError(Exception):
    """Base of everything storage raises on purpose."""


class StorageUnavailable(StorageError):
    """The database cannot be reached (or stopped answering)."""


class SchemaTooNew(StorageError):
    """The database was migrated by a newer sora-actors; this one must not touch it."""


class Conflict(StorageError):
    """A uniqueness rule was broken; ``field`` names the value that clashed."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class DatabaseInUse(StorageError):
    """Another process already serves this SQLite file."""
