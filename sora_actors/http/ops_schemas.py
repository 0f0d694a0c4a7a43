"""What the operators' routes answer (activity log, statistics, run-time config), as
pydantic models: the source of their part of ``/openapi.json`` (see `schemas`)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ..system_config import MAX_ANNOUNCEMENT, MAX_MESSAGE, PLAN_NAME
from .schemas import Ok, Out

# -- activity log ---------------------------------------------------------------------------


class LogUser(Out):
    username: str


class LogEntryOut(Out):
    id: str
    user_id: str | None
    action: str = Field(description="login, login_failed, register, generate_video, ...")
    details: Any = Field(description="What the action was about (JSON), or null")
    ip: str | None
    user_agent: str | None
    created_at: str | None
    user: LogUser | None = Field(description="null when the entry names no (existing) user")


class LogPage(Out):
    items: list[LogEntryOut]
    total: int
    page: int
    page_size: int


class LogQueryDoc(BaseModel):
    action: str | None = Field(
        default=None, pattern=r"^[a-z][a-z0-9_]{0,63}$", description="e.g. login_failed"
    )
    userId: str | None = Field(default=None, max_length=200, description="one user's entries")
    from_: str | None = Field(
        default=None, alias="from", description="ISO 8601 time or Unix ms, inclusive"
    )
    to: str | None = Field(default=None, description="ISO 8601 time or Unix ms, inclusive")
    page: int | None = Field(default=None, ge=1, le=1_000_000, description="1-based")
    pageSize: int | None = Field(default=None, ge=1, le=100, description="default 20")


# -- statistics -----------------------------------------------------------------------------


class DayCount(Out):
    date: str = Field(description="UTC day, YYYY-MM-DD")
    count: int


class TaskDay(Out):
    date: str = Field(description="UTC day, YYYY-MM-DD")
    created: int
    queued: int
    processing: int
    completed: int
    failed: int
    cancelled: int


class UserFigures(Out):
    total: int
    active24h: int = Field(alias="active24h", description="logged in or active in 24 h")
    active7d: int = Field(alias="active7d", description="logged in or active in 7 days")
    new_per_day: list[DayCount] = Field(description="last 30 days, oldest first")


class TaskFigures(Out):
    total: int
    by_status: dict[str, int]
    per_day: list[TaskDay] = Field(description="created per day and their status now")


class UpstreamFigures(Out):
    jobs: int = Field(description="tasks the upstream took (they hold an upstream id)")
    finished: int
    failed: int
    failure_rate: float = Field(description="failed / finished (0 when none finished)")


class VideoFigures(Out):
    stored: int = Field(description="videos whose copy is in the content store now")
    bytes: int


class LicenceFigures(Out):
    total: int
    by_type: dict[str, int]
    by_state: dict[str, int] = Field(description="active, expired, revoked, unused")
    by_type_and_state: dict[str, dict[str, int]]


class StatisticsOut(Out):
    users: UserFigures
    tasks: TaskFigures
    upstream: UpstreamFigures
    videos: VideoFigures
    licenses: LicenceFigures
    generated_at: str | None


# -- run-time config ------------------------------------------------------------------------


class MaintenanceOut(Out):
    enabled: bool
    message: str


class ConfigOut(Out):
    registration_open: bool = Field(description="false: POST /api/auth/register is 403")
    maintenance: MaintenanceOut = Field(description="on: new tasks are 503 MAINTENANCE")
    default_plan: str = Field(description="the plan of users without a licence")
    announcement: str | None = Field(description="shown by the console to every user")


class MaintenanceDoc(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool
    message: str = Field(default="", max_length=MAX_MESSAGE, description="shown when refused")


class ConfigPatchDoc(BaseModel):
    """Any subset of the settings; unknown keys and wrong types are 400 naming each."""

    model_config = ConfigDict(extra="forbid")

    registrationOpen: bool = Field(default=None)  # type: ignore[assignment]
    maintenance: MaintenanceDoc = Field(default=None)  # type: ignore[assignment]
    defaultPlan: str = Field(  # type: ignore[assignment]
        default=None, pattern=PLAN_NAME.pattern, description="e.g. FREE, TRIAL, PRO"
    )
    announcement: str | None = Field(
        default=None, max_length=MAX_ANNOUNCEMENT, description="null or empty: none"
    )


class PublicConfigOut(Out):
    registration_open: bool
    maintenance: MaintenanceOut
    announcement: str | None


class LogPageEnvelope(Ok[LogPage]):
    pass


class StatisticsEnvelope(Ok[StatisticsOut]):
    pass


class ConfigEnvelope(Ok[ConfigOut]):
    pass


class PublicConfigEnvelope(Ok[PublicConfigOut]):
    pass
