"""Links to finished videos: a signed link to our copy, and a fresh one on request.

- ``GET  /api/video/tasks/<id>/content``      a signed link to our copy (COMPLETED only)
- ``POST /api/video/tasks/<id>/refresh-url``  a fresh link; fetches the copy again if lost

The links point at the file server (`files.py`); the upstream API key never leaves the
server.
"""

from __future__ import annotations

from quart import Blueprint, Response

from ..clock import iso, wall_ms
from ..keeper import ContentGone
from ..lifecycle import Status
from ..storage import Task
from ..upstream import ErrorKind, UpstreamError
from . import signing
from .apidoc import documented
from .context import ctx, principal
from .envelope import ApiError, ok
from .files import expired
from .schemas import ContentLinkEnvelope, RefreshedUrlEnvelope
from .tasks import owned_task

blueprint = Blueprint("content", __name__)


def _require_completed(task: Task) -> None:
    if task.status != Status.COMPLETED:
        raise ApiError(
            409,
            "TASK_NOT_COMPLETED",
            f"The task is {task.status}; its video exists only once it is COMPLETED.",
            details={"status": task.status},
        )


@blueprint.get("/api/video/tasks/<video_id>/content")
@documented(
    ContentLinkEnvelope,
    auth=True,
    errors={
        404: ("TASK_NOT_FOUND",),
        409: ("TASK_NOT_COMPLETED",),
        410: ("CONTENT_EXPIRED", "CONTENT_MISSING"),
    },
)
async def content(video_id: str) -> Response:
    """A signed link to the finished video (COMPLETED tasks only), no login needed to play."""
    caller = await principal()
    task = await owned_task(video_id, caller.user_id)
    _require_completed(task)
    if task.content_expired_at is not None:
        raise ApiError(
            410,
            "CONTENT_EXPIRED",
            "This video's copy was removed after the retention period; "
            "POST refresh-url to fetch it again while the upstream still has it.",
            details={"contentExpiredAt": iso(task.content_expired_at)},
        )
    link = signing.media_url(task, "video")
    if link is None or not await ctx().services.runtime.content.present(task):
        raise ApiError(
            410,
            "CONTENT_MISSING",
            "The copy of this video is missing; POST refresh-url to fetch it again.",
        )
    return ok(
        {
            "videoId": task.video_id,
            "externalVideoId": task.external_video_id,
            "url": link.url,
            "expiresAt": iso(link.expires_at * 1000),
        }
    )


@blueprint.post("/api/video/tasks/<video_id>/refresh-url")
@documented(
    RefreshedUrlEnvelope,
    auth=True,
    errors={
        404: ("TASK_NOT_FOUND",),
        409: ("TASK_NOT_COMPLETED",),
        410: ("CONTENT_EXPIRED",),
        502: ("UPSTREAM_UNAVAILABLE",),
        503: ("UPSTREAM_UNAVAILABLE",),
    },
)
async def refresh_url(video_id: str) -> Response:
    """A fresh signed link; fetches the copy from the upstream again if it was lost."""
    caller = await principal()
    task = await owned_task(video_id, caller.user_id)
    _require_completed(task)
    try:
        task = await ctx().services.runtime.content.ensure(task)
    except ContentGone:
        fresh = await owned_task(video_id, caller.user_id)
        raise expired(fresh) from None
    except UpstreamError as error:
        if error.kind in (ErrorKind.AUTH, ErrorKind.QUOTA):
            raise ApiError(
                502, "UPSTREAM_UNAVAILABLE", "The video service refused our request."
            ) from None
        raise ApiError(
            503,
            "UPSTREAM_UNAVAILABLE",
            "The video service is not answering; try again shortly.",
            headers={"Retry-After": str(max(1, int(error.retry_after_s or 5)))},
        ) from None
    link = signing.media_url(task, "video")
    if link is None:  # ensure() returns a task with its copy, or raises
        raise expired(task)
    return ok(
        {
            "videoId": task.video_id,
            "externalVideoId": task.external_video_id,
            "videoUrl": link.url,
            "thumbnailUrl": (
                thumb.url if (thumb := signing.media_url(task, "thumbnail")) else None
            ),
            "expiresAt": iso(link.expires_at * 1000),
            "status": task.status,
            "refreshedAt": iso(wall_ms()),
        }
    )
