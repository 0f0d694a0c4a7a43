"""The one serialisation of a task for the wire (camelCase), used by REST and WebSocket."""

from __future__ import annotations

from typing import Any

from ..clock import iso
from ..lifecycle import RETRYABLE, ErrorCode, Phase, Status
from ..storage import Task
from .compat import aspect_ratio
from .signing import content_fields, reference_url

# The old backend's currentStep / totalSteps, from the phase: queued 1, submitted 2,
# generating 3, downloading our copy 4, completed 5; a failed or cancelled task has none.
STEPS = {
    Phase.ACCEPTED: 1,
    Phase.SUBMITTING: 2,
    Phase.POLLING: 3,
    Phase.FETCHING: 4,
    Phase.COMPLETED: 5,
}
TOTAL_STEPS = len(STEPS)


def task_wire(task: Task) -> dict[str, Any]:
    """The contract's task representation (REST: ISO 8601 times), with the old backend's
    names as aliases (``externalTaskId``, ``aspectRatio``, ``clientRequestId``, ...)."""
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
        "externalTaskId": task.external_video_id,
        "aspectRatio": aspect_ratio(task.size),
        "clientRequestId": task.idempotency_key,
        "referenceImage": reference_url(task),
        "currentStep": STEPS.get(Phase(task.phase)),
        "totalSteps": TOTAL_STEPS,
        "metadata": {"externalTaskId": task.external_video_id},
    }


def _retryable(code: str | None) -> bool | None:
    if code is None:
        return None
    try:
        return ErrorCode(code) in RETRYABLE
    except ValueError:
        return False


def task_messages(task: Task, message: str | None) -> list[tuple[str, dict[str, Any]]]:
    """The WebSocket messages (type, payload) that announce a change of ``task``.

    Every payload is `task_wire` plus ``message`` (so it carries both ids and ``seq``);
    terminal ones add the contract's fields. A cancelled task gets a ``taskProgress`` with
    status CANCELLED (what clients that predate ``taskCancelled`` understand) followed by
    ``taskCancelled``, its terminal event; both carry the same ``seq``.
    """
    base = task_wire(task)
    base["message"] = message
    if task.status == Status.COMPLETED:
        completed: dict[str, Any] = {
            **base,
            "status": "completed",
            "progress": 100,
            "result": {
                "videoUrl": base["videoUrl"],
                "thumbnailUrl": base["thumbnailUrl"],
                "duration": task.duration,
                "resolution": task.size,
            },
        }
        if task.started_at is not None and task.completed_at is not None:
            completed["metrics"] = {  # seconds, as the old backend sent them
                "totalTime": (task.completed_at - task.created_at) / 1000,
                "queueTime": (task.started_at - task.created_at) / 1000,
                "processTime": (task.completed_at - task.started_at) / 1000,
            }
        return [("taskCompleted", completed)]
    if task.status == Status.FAILED:
        error = {
            "code": task.error_code or Status.FAILED.value,
            "message": task.error_message or "the task failed",
            "retryable": bool(base["retryable"]),
        }
        return [("taskFailed", {**base, "status": "failed", "error": error})]
    if task.status == Status.CANCELLED:
        progress = {**base, "estimatedTimeRemaining": None}
        return [("taskProgress", progress), ("taskCancelled", {**base, "status": "cancelled"})]
    return [("taskProgress", {**base, "estimatedTimeRemaining": estimated_time_remaining(task)})]


def estimated_time_remaining(task: Task) -> int | None:
    """Seconds from this event until the upstream job is expected to end (the polling
    policy's estimate, see `polling`); None when there is none."""
    if task.estimated_end_at is None or task.terminal:
        return None
    return max(0, round((task.estimated_end_at - task.updated_at) / 1000))
