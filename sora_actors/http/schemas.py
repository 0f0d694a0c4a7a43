"""What the routes answer, as pydantic models: the source of the OpenAPI document.

The routes build their bodies with ``ok()`` and `task_wire`; these models describe those
bodies so that ``/openapi.json`` is generated, never hand-written. Response models forbid
extra fields (``additionalProperties: false``): a field added to a route but not here makes
the schemathesis test fail, which keeps the document truthful.
"""

from __future__ import annotations

from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from ..lifecycle import Status
from .models import LoginOut, LogoutOut, MeOut, UserOut, VerifyOut

T = TypeVar("T")

TaskStatus = Annotated[str, Field(json_schema_extra={"enum": [status.value for status in Status]})]


class Out(BaseModel):
    """Base of response bodies: camelCase, and nothing the document does not list."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


# -- envelopes ------------------------------------------------------------------------------


class ErrorInfo(Out):
    code: str = Field(description="Machine-readable code, e.g. TASK_NOT_FOUND")
    message: str = Field(description="Human-readable text (the same as the envelope's message)")
    details: Any = Field(
        default=None, description="Optional: offending fields ({field, message}[]) or context"
    )


class ErrorEnvelope(Out):
    """The error envelope: every non-2xx answer of the API."""

    success: Literal[False]
    message: str
    error: ErrorInfo


class Ok(Out, Generic[T]):
    """The success envelope."""

    success: Literal[True]
    data: T
    message: str | None = Field(default=None, description="Optional human-readable note")


# -- bodies ---------------------------------------------------------------------------------


class TaskMetadata(Out):
    external_task_id: str | None


class TaskOut(Out):
    """A video task (REST: times are ISO 8601 UTC)."""

    video_id: str = Field(description="video_<uuid4>: the id frontends use")
    external_video_id: str | None = Field(description="The upstream's id; null until submitted")
    status: TaskStatus
    progress: int = Field(ge=0, le=100)
    prompt: str
    model: str
    size: str
    duration: int = Field(description="seconds")
    media_type: str
    video_url: str | None = Field(description="Signed link to our copy; null until stored")
    thumbnail_url: str | None
    content_status: Literal["STORED", "EXPIRED", "PENDING_SPACE"] | None = Field(
        description="STORED: our copy is there; EXPIRED: removed; PENDING_SPACE: finished "
        "upstream, waiting for space in our store (it completes once there is)"
    )
    content_expired_at: str | None
    error_code: str | None
    error_message: str | None
    retryable: bool | None = Field(description="For a failed task: would a retry help?")
    poll_count: int
    last_poll_time: str | None
    created_at: str | None
    updated_at: str | None
    started_at: str | None
    completed_at: str | None
    remixed_from_video_id: str | None
    seq: int = Field(description="Version of the task; grows with every stored change")
    external_task_id: str | None = Field(description="The old backend's externalVideoId")
    aspect_ratio: Literal["16:9", "9:16"] = Field(description="From size")
    client_request_id: str | None = Field(
        description="The create's clientRequestId (or Idempotency-Key)"
    )
    reference_image: str | None = Field(
        description="Signed link to the reference image (image-to-video), else null"
    )
    current_step: int | None = Field(
        description="1 queued, 2 submitted, 3 generating, 4 downloading, 5 completed; "
        "null once failed or cancelled"
    )
    total_steps: int
    metadata: TaskMetadata


class TaskPage(Out):
    tasks: list[TaskOut]
    total: int
    page: int
    page_size: int
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page (keyset)")


class StatsOut(Out):
    total: int
    queued: int
    processing: int
    completed: int
    failed: int
    cancelled: int


class ContentLinkOut(Out):
    video_id: str
    external_video_id: str | None
    url: str = Field(description="Signed link, playable by <video src> without a login")
    expires_at: str | None


class RefreshedUrlOut(Out):
    video_id: str
    external_video_id: str | None
    video_url: str
    thumbnail_url: str | None
    expires_at: str | None
    status: TaskStatus
    refreshed_at: str | None


class DatabaseHealth(Out):
    dialect: str
    status: Literal["ok", "full", "unreachable"]
    error: str | None = None
    full_since: str | None = Field(default=None, description="full: since when writes fail")


class ContentHealth(Out):
    status: Literal["ok", "full"] = Field(description="full: downloads find no space")
    full_since: str | None
    pending_space: int = Field(description="tasks waiting for space to store their video")


class ChannelHealth(Out):
    name: str
    dialect: str
    priority: int
    weight: float
    state: Literal["closed", "open", "half_open", "disabled"] = Field(
        description="circuit state; disabled: switched off, or refused our key (401/403)"
    )
    disabled_reason: str | None
    jobs_running: int = Field(description="upstream jobs unfinished plus creates in flight")
    error_rate: float = Field(description="share of the last 100 calls that failed")
    latency_ms: float | None = Field(description="mean of the last 100 calls")
    retry_in: float = Field(description="open: seconds until a probe may go")


class AdminChannelOut(Out):
    """A channel as configured (keys shown by their last 4 characters) and as it fares."""

    name: str
    dialect: str
    base_url: str
    keys: list[str] = Field(description="each key's last 4 characters, e.g. ...a1b2")
    auth_style: str
    model_map: dict[str, str]
    models: list[str]
    sizes: list[str]
    durations: list[int]
    priority: int
    weight: float
    max_concurrent_jobs: int
    max_requests_per_second: float
    enabled: bool
    webhook_secret_set: bool
    health: ChannelHealth


class AdminChannelsOut(Out):
    channels: list[AdminChannelOut]


class ChannelTestOut(Out):
    name: str
    ok: bool
    latency_ms: float
    status: int | None = Field(description="the upstream's HTTP status on failure")
    error: str | None
    reenabled: bool = Field(description="a channel disabled by a 401/403 is enabled again")


class HealthOut(Out):
    status: Literal["ok", "degraded"]
    timestamp: str | None
    uptime: float = Field(description="seconds since start")
    version: str
    database: DatabaseHealth
    content: ContentHealth
    channels: list[ChannelHealth] = Field(
        default_factory=list, description="upstream channels; degraded when none is usable"
    )


# Named envelopes: readable component names in the document.


class UserEnvelope(Ok[UserOut]):
    pass


class LoginEnvelope(Ok[LoginOut]):
    pass


class MeEnvelope(Ok[MeOut]):
    pass


class VerifyEnvelope(Ok[VerifyOut]):
    pass


class LogoutEnvelope(Ok[LogoutOut]):
    pass


class TaskEnvelope(Ok[TaskOut]):
    pass


class TaskPageEnvelope(Ok[TaskPage]):
    pass


class DeletedOut(Out):
    videoId: str
    deleted: bool


class DeletedEnvelope(Ok[DeletedOut]):
    pass


class StatsEnvelope(Ok[StatsOut]):
    pass


class ContentLinkEnvelope(Ok[ContentLinkOut]):
    pass


class RefreshedUrlEnvelope(Ok[RefreshedUrlOut]):
    pass


class HealthEnvelope(Ok[HealthOut]):
    pass


class AdminChannelsEnvelope(Ok[AdminChannelsOut]):
    pass


class ChannelTestEnvelope(Ok[ChannelTestOut]):
    pass


# -- parameters -----------------------------------------------------------------------------


class TaskListQuery(BaseModel):
    page: int | None = Field(default=None, ge=1, le=1_000_000, description="1-based")
    page_size: int | None = Field(
        default=None, alias="pageSize", ge=1, le=100, description="default 20"
    )
    status: TaskStatus | None = Field(default=None, description="filter (case-insensitive)")
    order: Literal["asc", "desc"] | None = Field(default=None, description="by createdAt")
    cursor: str | None = Field(default=None, description="nextCursor of the previous page")
    client_request_id: str | None = Field(
        default=None,
        alias="clientRequestId",
        description="the task created with this clientRequestId (or Idempotency-Key), if any",
    )


class IdempotencyHeaders(BaseModel):
    idempotency_key: str | None = Field(
        default=None,
        min_length=1,
        max_length=255,
        description="Same key and body: the first answer is replayed (Idempotent-Replayed)",
    )


class FileQuery(BaseModel):
    exp: str | None = Field(default=None, description="expiry (Unix seconds) of the link")
    sig: str | None = Field(default=None, description="signature of the link")


class RangeHeaders(BaseModel):
    range: str | None = Field(default=None, description="bytes=start-end (one range)")
    if_range: str | None = Field(default=None, description="ETag of a partial copy")


# -- admin channels at run time (issue 15) ----------------------------------------------------


class AdminChannelEnvelope(Ok[AdminChannelOut]):
    pass


class ChannelDeletedOut(Out):
    name: str
    deleted: Literal[True]


class ChannelDeletedEnvelope(Ok[ChannelDeletedOut]):
    pass


class ChannelBodyDoc(Out):
    """A channel (the settings' ``[[channels]]`` schema, camelCase). POST: ``name``,
    ``baseUrl`` and ``apiKeys`` are required; PUT: any subset (omitted fields, keys and the
    webhook secret among them, stay as they are; the name cannot change). Keys and the
    webhook secret are write-only."""

    name: str = Field(default=None, pattern=r"^[A-Za-z0-9_.-]{1,64}$")  # type: ignore[assignment]
    dialect: Literal["openai", "replicate"] = "openai"
    base_url: str = Field(default=None, description="http:// or https://")  # type: ignore[assignment]
    api_keys: list[str] = Field(default=None, min_length=1)  # type: ignore[arg-type]
    auth_style: Literal["bearer", "bare", "x-api-key", "token"] = "bearer"
    model_map: dict[str, str] = Field(default_factory=dict)
    models: list[str] = Field(default_factory=list)
    sizes: list[str] = Field(default_factory=list)
    durations: list[int] = Field(default_factory=list)
    priority: int = 0
    weight: float = Field(default=1.0, gt=0)
    max_concurrent_jobs: int = Field(default=50, gt=0)
    max_requests_per_second: float = Field(default=10.0, gt=0)
    enabled: bool = True
    webhook_secret: str = Field(default="", description='"whsec_..." or empty')


# -- admin: users ---------------------------------------------------------------------------


class AdminUserOut(Out):
    """An account as the admin list shows it."""

    id: str
    username: str
    email: str | None
    role: Literal["USER", "ADMIN"]
    is_active: bool = Field(description="false: deactivated (DELETE); cannot log in")
    banned: bool = Field(description="true: banned; cannot log in nor use any token")
    created_at: str | None
    last_login: str | None
    task_count: int


class ActivityOut(Out):
    id: str
    user_id: str | None
    action: str
    details: Any = Field(description="JSON object, or null")
    ip: str | None
    user_agent: str | None
    created_at: str | None


class AdminUserDetailOut(AdminUserOut):
    license: dict[str, Any] | None = Field(
        description="The user's newest licence (its key is never shown), or null"
    )
    tasks_by_status: dict[str, int]
    recent_activity: list[ActivityOut] = Field(description="The last 20 entries, newest first")


class AdminUserPage(Out):
    items: list[AdminUserOut]
    total: int
    page: int
    page_size: int


class AdminUserEnvelope(Ok[AdminUserOut]):
    pass


class AdminUserDetailEnvelope(Ok[AdminUserDetailOut]):
    pass


class AdminUserPageEnvelope(Ok[AdminUserPage]):
    pass


class AdminUserListQuery(BaseModel):
    page: int | None = Field(default=None, ge=1, le=1_000_000, description="1-based")
    page_size: int | None = Field(
        default=None, alias="pageSize", ge=1, le=100, description="default 20"
    )
    q: str | None = Field(default=None, description="part of the username or email, or an id")
    role: Literal["USER", "ADMIN"] | None = None
    is_active: Literal["true", "false"] | None = Field(default=None, alias="isActive")
