"""Plain records that storage hands out: no rows, no connections."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from ..lifecycle import TERMINAL_STATUSES, UNFINISHED_STATUSES


@dataclass(frozen=True, slots=True)
class User:
    id: str
    username: str
    email: str | None
    role: str
    is_active: bool
    last_login: int | None
    created_at: int
    password_hash: str = dataclasses.field(repr=False)  # never in a log line
    banned: bool = False

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
            banned=bool(row["banned"]),
        )


@dataclass(frozen=True, slots=True)
class NewSession:
    """A login session to store: the id its token carries, and where it came from."""

    id: str
    user_id: str
    expires_at: int
    ip: str | None = None
    user_agent: str | None = None


@dataclass(frozen=True, slots=True)
class SessionState:
    """What a request needs to know of its token's session."""

    id: str
    expires_at: int
    revoked_at: int | None


@dataclass(frozen=True, slots=True)
class UserChanges:
    """An update of an account; None leaves a field as it is."""

    email: str | None = None
    clear_email: bool = False
    role: str | None = None
    is_active: bool | None = None
    banned: bool | None = None
    password_hash: str | None = dataclasses.field(default=None, repr=False)
    # The session that asked for the change, kept when the account keeps access (an admin
    # resetting their own password stays logged in where they did it).
    keep_session: str | None = None

    @property
    def revokes_sessions(self) -> bool:
        """Whether existing logins must end (access removed, or a new password)."""
        return self.is_active is False or self.banned is True or self.password_hash is not None


@dataclass(frozen=True, slots=True)
class UserSummary:
    """A row of the admin users list."""

    user: User
    task_count: int


@dataclass(frozen=True, slots=True)
class UserDetail:
    """An account as admins see it: tasks by status, recent activity, licence (if any)."""

    user: User
    tasks_by_status: dict[str, int]
    activity: list[dict[str, Any]]
    licence: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class Activity:
    """One ActivityLog entry to write (the caller says who, what and from where)."""

    action: str
    user_id: str | None = None
    details: dict[str, Any] | None = None
    ip: str | None = None
    user_agent: str | None = None


@dataclass(frozen=True, slots=True)
class Task:
    """One video task as stored. ``phase`` is the actor's state; ``status`` the public one."""

    video_id: str
    user_id: str
    external_video_id: str | None
    status: str
    phase: str
    progress: int
    prompt: str
    model: str
    size: str
    duration: int
    media_type: str
    error_code: str | None
    error_message: str | None
    poll_count: int
    last_poll_at: int | None
    next_poll_at: int | None
    seq: int
    restarts: int
    submit_started_at: int | None
    remixed_from_video_id: str | None
    idempotency_key: str | None
    request_hash: str | None
    upstream_expires_at: int | None
    deadline_at: int | None
    owner: str | None
    lease_expires_at: int | None
    created_at: int
    updated_at: int
    started_at: int | None
    completed_at: int | None
    # The local copy (see sora_actors/keeper.py): when it was complete, when the retention
    # sweep removed it, and which variants it holds ("video thumbnail").
    content_stored_at: int | None = None
    content_expired_at: int | None = None
    content_variants: str | None = None
    # When the task, finished upstream, first found the content store full (it waits).
    content_pending_since: int | None = None
    # The polling policy's estimate of when the upstream job ends (wall ms), if it has one.
    estimated_end_at: int | None = None
    # The upstream channel its create went to (see sora_actors/channels.py); None before.
    channel: str | None = None

    @classmethod
    def from_row(cls, row: Any) -> Task:
        return cls(**{name: row[name] for name in _TASK_FIELDS})

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def stored_variants(self) -> tuple[str, ...]:
        """The variants of the local copy that can be served now (none once expired)."""
        if self.content_stored_at is None or self.content_expired_at is not None:
            return ()
        return tuple((self.content_variants or "").split())


_TASK_FIELDS = tuple(f.name for f in dataclasses.fields(Task))
# The unfinished statuses as a SQL list, for the statements written as text.
UNFINISHED_SQL = ", ".join(f"'{status}'" for status in UNFINISHED_STATUSES)


@dataclass(frozen=True, slots=True)
class NewTask:
    """What a create request stores (the rest takes defaults)."""

    video_id: str
    user_id: str
    prompt: str
    model: str
    size: str
    duration: int
    status: str
    phase: str
    image: tuple[str, str, str] | None = None  # (content_type, filename, base64 data)
    idempotency_key: str | None = None
    request_hash: str | None = None
    remixed_from_video_id: str | None = None
    deadline_at: int | None = None
    owner: str | None = None  # the instance that will run its actor, and until when
    lease_expires_at: int | None = None
    media_type: str = "VIDEO"  # IMAGE: image-to-video (a reference image was sent)


@dataclass(frozen=True, slots=True)
class TaskPage:
    tasks: list[Task]
    total: int


@dataclass(frozen=True, slots=True)
class ContentRecord:
    """One stored variant of a task's media: where it is and what exactly was written."""

    video_id: str
    variant: str
    storage_key: str
    content_type: str
    size_bytes: int
    sha256: str
    stored_at: int

    @classmethod
    def from_row(cls, row: Any) -> ContentRecord:
        return cls(**{name: row[name] for name in _CONTENT_FIELDS})


_CONTENT_FIELDS = tuple(f.name for f in dataclasses.fields(ContentRecord))
