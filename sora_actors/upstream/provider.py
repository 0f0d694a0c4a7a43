"""The provider interface the actors use, and the value types it speaks.

Everything upstream-specific (URL layout, auth header, status names, error
shapes) is normalised into these types so that actors never see a dialect.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Literal, Protocol, Self, runtime_checkable

ContentVariant = Literal["video", "thumbnail", "spritesheet"]


class UpstreamStatus(enum.Enum):
    """Normalised job status. UNKNOWN is anything we could not classify: never treat it as done."""

    QUEUED = "queued"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    UNKNOWN = "unknown"

    @property
    def terminal(self) -> bool:
        """True once the upstream will not change the job any more."""
        return self in (UpstreamStatus.COMPLETED, UpstreamStatus.FAILED, UpstreamStatus.CANCELLED)


class ErrorKind(enum.Enum):
    """What went wrong, in terms of what the caller should do next."""

    RATE_LIMITED = "rate_limited"
    TRANSIENT = "transient"
    TIMEOUT = "timeout"
    INVALID_REQUEST = "invalid_request"
    CONTENT_POLICY = "content_policy"
    AUTH = "auth"
    QUOTA = "quota"
    NOT_FOUND = "not_found"
    MALFORMED = "malformed"
    # A create whose outcome is unknown (timeout, dropped connection, unreadable
    # 2xx): the job may exist upstream. Never retry blindly; look it up first.
    AMBIGUOUS_CREATE = "ambiguous_create"


_RETRYABLE = frozenset(
    {ErrorKind.RATE_LIMITED, ErrorKind.TRANSIENT, ErrorKind.TIMEOUT, ErrorKind.MALFORMED}
)


class UpstreamError(Exception):
    """The one exception providers raise; `kind` drives the caller's decision."""

    def __init__(
        self,
        kind: ErrorKind,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(f"{kind.value}: {message}")
        self.kind = kind
        self.message = message
        self.status = status
        self.code = code
        self.retry_after_s = retry_after_s

    @property
    def retryable(self) -> bool:
        """Whether the same call may just be repeated later (never for an ambiguous create)."""
        return self.kind in _RETRYABLE

    def __repr__(self) -> str:
        return (
            f"UpstreamError({self.kind.name}, {self.message!r}, status={self.status}, "
            f"code={self.code!r}, retry_after_s={self.retry_after_s})"
        )


@dataclass(frozen=True, slots=True)
class UpstreamJob:
    """A snapshot of one upstream job, dialect-free."""

    id: str
    status: UpstreamStatus
    progress: int = 0
    model: str | None = None
    size: str | None = None
    seconds: str | None = None
    created_at: float | None = None
    completed_at: float | None = None
    expires_at: float | None = None
    remixed_from: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    direct_url: str | None = None
    poll_after_s: float | None = None
    # The prompt as the upstream echoes it: lets a restarted actor recognise a job whose
    # create answer it never stored.
    prompt: str | None = None

    @property
    def is_done(self) -> bool:
        """Completed *with* content to fetch: a 'completed' carrying an error is not done."""
        return self.status is UpstreamStatus.COMPLETED and self.error_code is None

    def content_expired(self, now_unix: float) -> bool:
        """Whether the upstream has (per its own expires_at) dropped the media by `now_unix`."""
        return self.expires_at is not None and now_unix >= self.expires_at


@dataclass(frozen=True, slots=True)
class JobPage:
    """One page of `list_jobs`, newest first; pass `last_id` as `after` for the next page."""

    jobs: tuple[UpstreamJob, ...]
    has_more: bool
    first_id: str | None = None
    last_id: str | None = None


@dataclass(frozen=True, slots=True)
class ImageInput:
    """An image-to-video reference image, sent as the `input_reference` file part."""

    data: bytes
    content_type: str
    filename: str


@dataclass(frozen=True, slots=True)
class SubmitRequest:
    """What an actor asks for, in frontend terms; the provider maps model and seconds."""

    prompt: str
    model: str = "sora-2"
    size: str = "720x1280"
    seconds: int | str = 4
    image: ImageInput | None = None


# Called by a create right before each request leaves (after any wait for a job slot, the
# request rate or a Retry-After): the caller stores its intent then, not before the wait.
OnSend = Callable[[], Awaitable[None]]


@runtime_checkable
class Provider(Protocol):
    """The upstream as actors see it. All waiting inside uses Trio time."""

    async def submit(self, request: SubmitRequest, *, on_send: OnSend | None = None) -> UpstreamJob:
        """Create a job. Raises AMBIGUOUS_CREATE when it may or may not exist."""
        ...

    async def get(self, job_id: str) -> UpstreamJob:
        """Current state of a job (also frees/re-occupies limiter slots)."""
        ...

    def fetch_content(
        self, job_id: str, variant: ContentVariant = "video"
    ) -> AsyncGenerator[bytes, None]:
        """Stream the media in chunks; close it with `contextlib.aclosing` if you stop early."""
        ...

    async def remix(
        self, job_id: str, prompt: str, *, on_send: OnSend | None = None
    ) -> UpstreamJob:
        """Create a new job derived from a completed one (same ambiguity rules as submit)."""
        ...

    async def list_jobs(self, after: str | None = None, limit: int = 100) -> JobPage:
        """Newest-first page of this key's jobs."""
        ...

    async def find_jobs(self, request: SubmitRequest, *, pages: int = 3) -> list[UpstreamJob]:
        """The jobs on the newest ``pages`` of the list that ``request`` may have created
        (same prompt; model, size and length as this provider sends them): how a create
        whose answer was lost is found again."""
        ...

    async def cancel(self, job_id: str) -> bool:
        """Ask the upstream to stop the job; False when this dialect cannot cancel."""
        ...

    def forget(self, job_id: str) -> None:
        """We stop following this job (cancelled, failed, handed to another instance):
        give back its concurrent-job slot, since no poll will see it end."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


async def find_in_list(
    list_jobs: Callable[..., Awaitable[JobPage]],
    wanted: Callable[[UpstreamJob], bool],
    pages: int,
) -> list[UpstreamJob]:
    """The ``wanted`` jobs of the newest ``pages`` pages (what `find_jobs` is made of)."""
    found: list[UpstreamJob] = []
    after: str | None = None
    for _ in range(pages):
        page = await list_jobs(after=after, limit=100)
        found += [job for job in page.jobs if wanted(job)]
        if not page.has_more or page.last_id is None:
            break
        after = page.last_id
    return found
