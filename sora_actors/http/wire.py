"""The one serialisation of a task for the wire (camelCase), used by REST and WebSocket."""

from __future__ import annotations

from typing import Any

from ..clock import iso
from ..lifecycle import RETRYABLE, ErrorCode
from ..storage import Task
from .signing import content_fields


def task_wire(task: Task) -> dict[str, Any]:
    """The contract's task representation (REST: ISO 8601 times)."""
    return {
        "videoId": task.video_id,
        "externalVideoId": task.external_video_id,
        "status": task.status,
        "progress": task.progress,
        "prompt": task.prompt,
        "model": task.model,
        "size": task.size,
        "duration": task.duration,
        "mediaType": task.media_type,
        **content_fields(task),  # videoUrl, thumbnailUrl: signed links to our copy
        "errorCode": task.error_code,
        "errorMessage": task.error_message,
        "retryable": _retryable(task.error_code),
        "pollCount": task.poll_count,
        "lastPollTime": iso(task.last_poll_at),
        "createdAt": iso(task.created_at),
        "updatedAt": iso(task.updated_at),
        "startedAt": iso(task.started_at),
        "completedAt": iso(task.completed_at),
        "remixedFromVideoId": task.remixed_from_video_id,
        "seq": task.seq,
    }


def _retryable(code: str | None) -> bool | None:
    if code is None:
        return None
    try:
        return ErrorCode(code) in RETRYABLE
    except ValueError:
        return False
