"""Plain records that storage hands out: no rows, no connections."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class User:
    id: str
    username: str
    email: str | None
    role: str
    is_active: bool
    last_login: int | None
    created_at: int
    password_hash: str

    @classmethod
    def from_row(cls, row: Any) -> User:
        return cls(
            id=row["id"],
            username=row["username"],
            email=row["email"],
            role=row["role"],
            is_active=bool(row["is_active"]),
            last_login=row["last_login"],
            created_at=row["created_at"],
            password_hash=row["password_hash"],
        )


@dataclass(frozen=True, slots=True)
class Activity:
    """One ActivityLog entry to write (the caller says who, what and from where)."""

    action: str
    user_id: str | None = None
    details: dict[str, Any] | None = None
    ip: str | None = None
    user_agent: str | None = None
