"""The OpenAI-compatible door: OpenAI's Videos API in front of our own tasks.

Served at ``/api/relay/v1/videos`` and ``/api/relay/sora/videos`` (the old backend's later
frontend called both), so that the official ``openai`` SDK, pointed at
``base_url=<server>/api/relay/v1`` with a personal API key (or a login token), drives our
service:

- ``POST   /videos``                   create (JSON or multipart with ``input_reference``)
- ``GET    /videos``                   list (``after``, ``limit``, ``order``)
- ``GET    /videos/<id>``              retrieve
- ``GET    /videos/<id>/content``      the bytes of our copy (``variant``)
- ``POST   /videos/<id>/remix``        remix a completed video
- ``DELETE /videos/<id>``              delete (cancelled first if unfinished); then 404s

Nothing here is a second implementation: a video is an ordinary task (accepted by the task
service, run by its actor, counted, announced on ``/ws``, shown in the console), its ``id``
is our ``videoId``, and the bytes stream from our copy through `files.serve_copy`. Only the
shapes differ, and they are translated at this door: the Video object (`video_object`), and
errors, which leave in OpenAI's ``{"error": {"message", "type", "param", "code"}}``.
"""

from __future__ import annotations

import json
from typing import Any

from quart import Blueprint, Quart, Response, request

from ..lifecycle import Status
from ..storage import Task
from ..task_service import Image, Order
from .context import caller, ctx
from .envelope import ApiError, json_response
from .files import serve_copy
from .tasks import (
    TaskCreate,
    _int_arg,
    _read_create_request,
    _refuse,
    _validate,
    create_task,
    delete_task,
    idempotency_key,
    owned_task,
    remix_order,
)

blueprint = Blueprint("relay", __name__)

# Where the door is mounted: the SDK's base_url is one of these.
PREFIXES = {"relay": "/api/relay/v1", "relay_sora": "/api/relay/sora"}

# Our public statuses as OpenAI's. A cancelled task has ended without a video: clients
# (the SDK's poll among them) know only these four, so it is "failed" with code "cancelled".
STATUS = {
    Status.QUEUED: "queued",
    Status.PROCESSING: "in_progress",
    Status.COMPLETED: "completed",
    Status.FAILED: "failed",
    Status.CANCELLED: "failed",
}
VARIANTS = ("video", "thumbnail", "spritesheet")
MAX_LIMIT = 100
DEFAULT_LIMIT = 20
# Our field names where OpenAI's differ (`param` of an error).
PARAMS = {"duration": "seconds", "referenceImage": "input_reference"}
# OpenAI's status where ours differs: the SDK retries a 409 (a race, in its eyes), but
# remixing an unfinished video is a request that cannot succeed as it is.
STATUS_OVERRIDES = {"TASK_NOT_COMPLETED": 400}
ERROR_TYPES = {
    401: "authentication_error",
    403: "permission_error",
    429: "rate_limit_error",
}


def _seconds(ms: int | None) -> int | None:
    return ms // 1000 if ms is not None else None


def _expires_at(task: Task) -> int | None:
    """When our copy goes (retention), or went; None while there is none or kept forever."""
    if task.content_expired_at is not None:
        return _seconds(task.content_expired_at)
    days = ctx().services.settings.content_retention_days
    if task.content_stored_at is None or days <= 0:
        return None
    return _seconds(task.content_stored_at + int(days * 86_400_000))


def video_object(task: Task) -> dict[str, Any]:
    """A task as OpenAI's Video object."""
    status = Status(task.status)
    error = None
    if status is Status.CANCELLED:
        error = {"code": "cancelled", "message": task.error_message or "The task was cancelled."}
    elif status is Status.FAILED:
        error = {
            "code": (task.error_code or "failed").lower(),
            "message": task.error_message or "The video could not be made.",
        }
    return {
        "id": task.video_id,
        "object": "video",
        "model": task.model,
        "status": STATUS[status],
        "progress": 100 if status is Status.COMPLETED else task.progress,
        "created_at": _seconds(task.created_at),
        "completed_at": _seconds(task.completed_at) if task.terminal else None,
        "expires_at": _expires_at(task),
        "prompt": task.prompt,
        "size": task.size,
        "seconds": str(task.duration),
        "remixed_from_video_id": task.remixed_from_video_id,
        "error": error,
    }


def _refused(message: str, param: str | None, code: str = "INVALID_VALUE") -> ApiError:
    """400 naming the offending parameter (OpenAI's ``param``)."""
    return ApiError(400, code, message, details=[{"field": param, "message": message}])


async def _read_order() -> tuple[TaskCreate, Image | None]:
    """A create as OpenAI clients send it: multipart (openai 3.x, or any file) is read as
    our own create reads it; JSON (openai 2.x) carries ``seconds`` as a string."""
    if request.mimetype == "multipart/form-data":
        return await _read_create_request()
    raw = await request.get_json()
    if not isinstance(raw, dict):
        raise ApiError(400, "VALIDATION_ERROR", "body: must be a JSON object")
    fields = {key: raw[key] for key in ("prompt", "model", "size") if key in raw}
    seconds = raw.get("seconds")
    if seconds is not None:
        digits = isinstance(seconds, str) and seconds.isascii() and seconds.isdigit()
        fields["duration"] = int(seconds) if digits and len(seconds) <= 9 else seconds
    return _validate(TaskCreate, fields), None


async def _create(user_id: str, order: Order) -> Response:
    task, created = await create_task(user_id, order, idempotency_key())
    headers = {} if created else {"Idempotent-Replayed": "true"}
    return json_response(video_object(task), headers=headers)


@blueprint.post("/videos")
async def create() -> Response:
    """Create a video: an ordinary task, queued."""
    who, _ = await caller()  # 401 before reading a large body
    body, image = await _read_order()
    order = Order(body.prompt, body.model, body.size, body.duration, image=image)
    return await _create(who.user_id, order)


@blueprint.get("/videos")
async def list_videos() -> Response:
    """The caller's videos, a page at a time: ``after`` is the last id of the previous page."""
    who, _ = await caller()
    problems: list[dict[str, str]] = []
    limit = _int_arg("limit", DEFAULT_LIMIT, 1, MAX_LIMIT, problems)
    order = request.args.get("order") or "desc"
    if order not in ("asc", "desc"):
        problems.append({"field": "order", "message": "must be asc or desc"})
    _refuse(problems)
    cursor = None
    after = request.args.get("after")
    if after:
        try:
            previous = await owned_task(after, who.user_id)
        except ApiError:
            raise _refused(f"after: no video {after}", "after") from None
        cursor = (previous.created_at, previous.video_id)
    page = await ctx().services.storage.tasks.page(
        who.user_id, descending=order == "desc", page_size=limit + 1, cursor=cursor
    )
    tasks = page.tasks[:limit]
    return json_response(
        {
            "object": "list",
            "data": [video_object(task) for task in tasks],
            "first_id": tasks[0].video_id if tasks else None,
            "last_id": tasks[-1].video_id if tasks else None,
            "has_more": len(page.tasks) > limit,
        }
    )


@blueprint.get("/videos/<video_id>")
async def retrieve(video_id: str) -> Response:
    who, _ = await caller()
    return json_response(video_object(await owned_task(video_id, who.user_id)))


@blueprint.get("/videos/<video_id>/content")
async def content(video_id: str) -> Response:
    """The bytes of a completed video's copy: ``variant`` video (mp4) or thumbnail (webp);
    we keep no spritesheet, so that one is a 404."""
    who, _ = await caller()
    variant = request.args.get("variant") or "video"
    if variant not in VARIANTS:
        raise _refused(f"variant: must be one of {', '.join(VARIANTS)}", "variant")
    task = await owned_task(video_id, who.user_id)
    if task.status != Status.COMPLETED:
        raise _refused(
            f"Video {video_id} is {STATUS[Status(task.status)]}; its content exists once it "
            "is completed.",
            None,
            code="VIDEO_NOT_READY",
        )
    if variant not in task.stored_variants:
        raise ApiError(
            404,
            "CONTENT_NOT_FOUND",
            f"Video {video_id} has no {variant} here"
            + (" (its copy has expired)." if task.content_expired_at is not None else "."),
        )
    return await serve_copy(task, variant)


@blueprint.post("/videos/<video_id>/remix")
async def remix(video_id: str) -> Response:
    """A new video from a completed one with a new prompt (same model, size, seconds)."""
    who, _ = await caller()
    return await _create(who.user_id, await remix_order(who.user_id, video_id))


@blueprint.delete("/videos/<video_id>")
async def delete(video_id: str) -> Response:
    """Delete a video as our ``DELETE /api/video/tasks/<id>`` does (cancelled first if
    unfinished, files removed); from then on it is a 404 here too."""
    who, _ = await caller()
    await delete_task(video_id, who.user_id)
    return json_response({"id": video_id, "object": "video.deleted", "deleted": True})


@blueprint.route("/<path:rest>", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
async def unknown(rest: str) -> Response:
    """Anything else under the door: OpenAI's 404, not our envelope."""
    raise ApiError(404, "NOT_FOUND", f"No route for {request.method} {request.path}.")


# -- errors, in OpenAI's shape -----------------------------------------------------------


def openai_error(status: int, envelope: dict[str, Any]) -> dict[str, Any]:
    """Our error envelope as OpenAI's error object."""
    error = envelope.get("error") or {}
    details = error.get("details")
    param = None
    if isinstance(details, list) and details and isinstance(details[0], dict):
        param = details[0].get("field")
    elif isinstance(details, dict):
        param = details.get("field")
    if isinstance(param, str):
        param = PARAMS.get(param, param)
    kind = ERROR_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return {
        "error": {
            "message": str(error.get("message") or envelope.get("message") or ""),
            "type": kind,
            "param": param if isinstance(param, str) else None,
            "code": str(error.get("code") or "error").lower(),
        }
    }


@blueprint.after_request
async def _openai_errors(response: Response) -> Response:
    """Every error answered under the door (ours, the rate limits', the body limit's) leaves
    in OpenAI's shape, with the same status and headers."""
    if response.status_code < 400 or response.mimetype != "application/json":
        return response
    try:
        envelope = json.loads(await response.get_data(as_text=True))
    except ValueError:
        return response
    if not isinstance(envelope, dict) or envelope.get("success") is not False:
        return response
    code = str((envelope.get("error") or {}).get("code"))
    response.status_code = STATUS_OVERRIDES.get(code, response.status_code)
    response.set_data(
        json.dumps(openai_error(response.status_code, envelope), separators=(",", ":"))
    )
    return response


def install(app: Quart) -> None:
    """Mount the door at both of its prefixes."""
    for name, prefix in PREFIXES.items():
        app.register_blueprint(blueprint, url_prefix=prefix, name=name)
