"""``/api/video``: create (or remix), read, list, cancel tasks and count them.

Reads go straight to storage; anything that changes a task goes through the task service
(creates) or the supervisor (cancels, which reach the task's actor).
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator
from quart import Blueprint, Response, request

from ..lifecycle import Status
from ..plans import PlanForbids
from ..storage import Activity, Conflict, Task
from ..storage.quota import QuotaExceeded
from ..task_service import Image, Order
from . import compat
from .apidoc import documented
from .context import client_address, ctx, principal
from .envelope import ApiError, ok
from .errors import invalid, validation_details
from .models import Prompt
from .ratelimit import retry_after
from .schemas import (
    IdempotencyHeaders,
    StatsEnvelope,
    TaskEnvelope,
    TaskListQuery,
    TaskPageEnvelope,
)
from .wire import task_wire

blueprint = Blueprint("tasks", __name__, url_prefix="/api/video")

MODELS = compat.MODELS
SIZES = compat.SIZES
DURATIONS = (4, 5, 8, 10, 12, 15)
IMAGE_TYPES = {b"\x89PNG\r\n\x1a\n": "image/png", b"\xff\xd8\xff": "image/jpeg"}
STATUSES = tuple(status.value for status in Status)
MAX_PAGE_SIZE = 100
_DURATION_ENUM: dict[str, Any] = {"enum": list(DURATIONS)}
SECONDS_RULE = 'must be a whole number of seconds: in JSON an integer such as 10, not "10" or 10.0'
CreateModel = TypeVar("CreateModel", bound="TaskCreate")


# The values each create field accepts, and the unit its error message names.
_CHOICES: dict[str, tuple[tuple[object, ...], str]] = {
    "model": (compat.ACCEPTED_MODELS, ""),
    "size": (SIZES, ""),
    "duration": (DURATIONS, " (seconds)"),
}


class TaskCreate(BaseModel):
    """A create request, from JSON or multipart alike."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    # The enums are also checked by the validators below (with friendlier messages);
    # they are in the schema so that /openapi.json says what is accepted.
    prompt: Prompt
    model: str = Field(
        default="sora-2",
        description="ours, or an old name that encodes orientation, tier and length",
        json_schema_extra={"enum": list(compat.ACCEPTED_MODELS)},
    )
    size: str = Field(default="720x1280", json_schema_extra={"enum": list(SIZES)})
    duration: int = Field(
        default=4,
        alias="duration",
        description='seconds, a JSON integer (not "10" or 10.0)',
        json_schema_extra=_DURATION_ENUM,
    )
    aspect_ratio: str | None = Field(
        default=None,
        alias="aspectRatio",
        description="16:9 or landscape, 9:16 or portrait (also read as aspect_ratio)",
        json_schema_extra={"enum": list(compat.ASPECT_RATIOS)},
    )
    hd: bool | None = Field(default=None, description="the model's larger size, if it has one")
    watermark: bool | None = Field(default=None, description="accepted and ignored")
    n: int | None = Field(default=None, description="videos per request: only 1")
    client_request_id: str | None = Field(
        default=None,
        alias="clientRequestId",
        min_length=1,
        max_length=255,
        description="an idempotency key, like the Idempotency-Key header; "
        "find the task again with GET /api/video/tasks?clientRequestId=",
    )

    @field_validator("aspect_ratio")
    @classmethod
    def _ratio(cls, value: str | None) -> str | None:
        if value is not None and value.lower() not in compat.ASPECT_RATIOS:
            raise ValueError(f"must be one of {', '.join(compat.ASPECT_RATIOS)}")
        return value

    @field_validator("hd", "watermark", mode="before")
    @classmethod
    def _form_bool(cls, value: Any) -> Any:
        return compat.as_bool(value)

    @field_validator("client_request_id")
    @classmethod
    def _key_text(cls, value: str | None) -> str | None:
        if value is not None and ("\x00" in value or not value.strip()):
            raise ValueError("must be 1 to 255 characters, not blank, without NUL")
        return value

    @field_validator("n")
    @classmethod
    def _one(cls, value: int | None) -> int | None:
        if value is not None and value != 1:
            raise ValueError("must be 1: one video per request")
        return value

    @field_validator("duration", "seconds", mode="before", check_fields=False)
    @classmethod
    def _integer(cls, value: Any) -> Any:
        """Seconds are integers: "10" or 10.0 are refused, not quietly read as 10."""
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise ValueError(SECONDS_RULE)
        return value

    @field_validator("model", "size", "duration")
    @classmethod
    def _allowed(cls, value: Any, info: ValidationInfo) -> Any:
        allowed, unit = _CHOICES[info.field_name or ""]
        if value not in allowed:
            raise ValueError(f"must be one of {', '.join(map(str, allowed))}{unit}")
        return value


class TaskCreateJson(TaskCreate):
    """JSON body: text-to-video, or image-to-video with ``referenceImage`` as a data URL."""

    reference_image: str | None = Field(
        default=None,
        alias="referenceImage",
        description="data:image/png;base64,... (PNG, JPEG or WebP)",
        json_schema_extra={"pattern": "^data:image/[a-z]+;base64,"},
    )
    seconds: int | None = Field(
        default=None,
        description="Same as duration (used when duration is absent); a JSON integer",
    )


class TaskCreateForm(BaseModel):
    """multipart/form-data body (documentation of what `_read_create_request` reads).

    The text fields are validated by `TaskCreate`, the file by `_check_image`.
    """

    prompt: Prompt
    model: str | None = Field(default=None, json_schema_extra={"enum": list(MODELS)})
    size: str | None = Field(default=None, json_schema_extra={"enum": list(SIZES)})
    seconds: int | None = Field(
        default=None, description="seconds", json_schema_extra=_DURATION_ENUM
    )
    duration: int | None = Field(
        default=None, description="Same as seconds", json_schema_extra=_DURATION_ENUM
    )
    input_reference: bytes | None = Field(
        default=None, description="Reference image file (PNG, JPEG or WebP): image-to-video"
    )
    aspectRatio: str | None = Field(default=None, description="as in the JSON body")
    hd: bool | None = None
    watermark: bool | None = None
    n: int | None = Field(default=None, description="only 1")
    clientRequestId: str | None = Field(default=None, description="as in the JSON body")


def image_type(data: bytes) -> str | None:
    for magic, content_type in IMAGE_TYPES.items():
        if data.startswith(magic):
            return content_type
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def _check_image(data: bytes, limit: int) -> str:
    if not data:
        raise ApiError(400, "INVALID_IMAGE", "The reference image is empty.")
    if len(data) > limit:
        raise ApiError(413, "IMAGE_TOO_LARGE", f"The reference image is larger than {limit} bytes.")
    content_type = image_type(data)
    if content_type is None:
        raise ApiError(
            415, "UNSUPPORTED_IMAGE_TYPE", "The reference image must be PNG, JPEG or WebP."
        )
    return content_type


def _decode_data_url(value: str, limit: int) -> bytes:
    head, comma, payload = value.partition(",")
    if not comma or not head.startswith("data:") or not head.endswith(";base64"):
        raise ApiError(
            400,
            "VALIDATION_ERROR",
            "referenceImage: must be a base64 data URL (data:image/png;base64,...)",
            details=[{"field": "referenceImage", "message": "not a base64 data URL"}],
        )
    if len(payload) > limit * 4 // 3 + 4:
        raise ApiError(413, "IMAGE_TOO_LARGE", f"The reference image is larger than {limit} bytes.")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(
            400,
            "VALIDATION_ERROR",
            "referenceImage: the base64 data is invalid",
            details=[{"field": "referenceImage", "message": "invalid base64"}],
        ) from None


def _validate(model: type[CreateModel], fields: dict[str, Any]) -> CreateModel:
    if "aspect_ratio" in fields and "aspectRatio" not in fields:
        fields["aspectRatio"] = fields.pop("aspect_ratio")
    try:
        return model.model_validate(fields)
    except ValidationError as error:
        details = validation_details(error)
        for detail in details:
            if detail["field"] == "model":  # say which names are accepted
                detail["accepted"] = list(compat.ACCEPTED_MODELS)
        raise invalid(details) from None


# The create fields a multipart form may carry as text (the file part is read apart).
_FORM_FIELDS = (
    "prompt",
    "model",
    "size",
    "aspectRatio",
    "aspect_ratio",
    "hd",
    "watermark",
    "n",
    "clientRequestId",
)


def shape(body: TaskCreate) -> compat.Shape:
    """Our model, size and duration for the request (old names and aspectRatio mapped)."""
    given = body.model_fields_set
    try:
        return compat.resolve(
            body.model,
            body.size if "size" in given else None,
            body.duration if "duration" in given else None,
            body.aspect_ratio,
            body.hd,
            default_duration=body.duration,
        )
    except compat.Contradiction as clash:
        raise ApiError(
            422,
            "CONFLICTING_FIELDS",
            f"{' and '.join(clash.fields)} disagree: {clash.message}",
            details=[{"field": field, "message": clash.message} for field in clash.fields],
        ) from None


async def _read_create_request() -> tuple[TaskCreate, Image | None]:
    """The request and its optional image ``(content_type, filename, bytes)``."""
    limit = ctx().services.settings.max_image_bytes
    if request.mimetype == "multipart/form-data":
        form = await request.form
        files = await request.files
        fields: dict[str, Any] = {key: form[key] for key in _FORM_FIELDS if key in form}
        seconds = form.get("seconds") or form.get("duration")
        if seconds is not None:  # form fields are text: plain digits are the integer
            digits = seconds.isascii() and seconds.isdigit() and len(seconds) <= 9
            fields["duration"] = int(seconds) if digits else seconds
        body = _validate(TaskCreate, fields)
        upload = files.get("input_reference")
        if upload is None:
            return body, None
        data = upload.read()
        return body, (_check_image(data, limit), upload.filename or "reference", data)
    raw = json_object(await request.get_json())
    if "duration" not in raw and "seconds" in raw:
        raw["duration"] = raw["seconds"]
    body = _validate(TaskCreateJson, raw)
    if not body.reference_image:
        return body, None
    data = _decode_data_url(body.reference_image, limit)
    return body, (_check_image(data, limit), "reference", data)


def json_object(raw: Any) -> dict[str, Any]:
    """The body, which must be a JSON object (an array, say, is a 400 naming ``body``)."""
    if not isinstance(raw, dict):
        raise invalid([{"field": "body", "message": "must be a JSON object"}])
    return raw


def idempotency_key(body_key: str | None = None) -> str | None:
    """The request's idempotency key: the Idempotency-Key header or the body's
    ``clientRequestId`` (the old backend's name for it); both, and different: 422."""
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return body_key
    if body_key is not None and key.strip() != body_key:
        raise ApiError(
            422,
            "CONFLICTING_FIELDS",
            "Idempotency-Key and clientRequestId disagree: send one, or the same value in both.",
            details=[
                {"field": "Idempotency-Key", "message": "differs from clientRequestId"},
                {"field": "clientRequestId", "message": "differs from Idempotency-Key"},
            ],
        )
    key = key.strip()
    if not key or len(key) > 255:
        raise ApiError(
            400, "INVALID_IDEMPOTENCY_KEY", "Idempotency-Key must be 1 to 255 characters."
        )
    return key


# How a QuotaExceeded window reads in a message.
_WINDOWS = {
    "running": "tasks running at once",
    "24h": "tasks in 24 hours",
    "30d": "tasks in 30 days",
}
QUOTA_ERRORS = {403: ("PLAN_FORBIDS",), 429: ("QUOTA_EXCEEDED",)}


def _activity(action: str, user_id: str, **details: object) -> Activity:
    return Activity(
        action, user_id, details or None, client_address(), request.headers.get("User-Agent")
    )


async def owned_task(video_id: str, user_id: str) -> Task:
    """The caller's task, or 404 (another user's task is not revealed to exist)."""
    task = await ctx().services.storage.tasks.get(video_id)
    if task is None or task.user_id != user_id:
        raise ApiError(404, "TASK_NOT_FOUND", f"No task {video_id}.")
    return task


def refuse_in_maintenance() -> None:
    """503 MAINTENANCE with the operator's message while maintenance mode is on (new tasks
    only: running ones go on)."""
    maintenance = ctx().services.runtime.config.current().maintenance
    if maintenance.enabled:
        raise ApiError(503, "MAINTENANCE", maintenance.notice)


async def create_task(user_id: str, order: Order, key: str | None) -> tuple[Task, bool]:
    """Accept a task through the task service (which starts its actor); ``(task, created)``.
    Every creating route (JSON, multipart, remix) comes here."""
    refuse_in_maintenance()
    try:
        return await ctx().services.runtime.tasks.accept(
            user_id,
            order,
            idempotency_key=key,
            ip=client_address(),
            user_agent=request.headers.get("User-Agent"),
        )
    except Conflict as clash:
        raise ApiError(
            422,
            "IDEMPOTENCY_KEY_REUSED",
            "This Idempotency-Key was already used with a different request.",
        ) from clash
    except PlanForbids as no:
        raise ApiError(
            403,
            "PLAN_FORBIDS",
            f"Your plan ({no.plan}) does not allow {no.field} {no.value}.",
            details={"plan": no.plan, "field": no.field, "value": no.value, "allowed": no.allowed},
        ) from None
    except QuotaExceeded as full:
        raise ApiError(
            429,
            "QUOTA_EXCEEDED",
            f"Your plan allows {full.limit} {_WINDOWS[full.window]}; "
            f"try again in {full.retry_after} s.",
            details={"limit": full.limit, "used": full.used, "window": full.window},
            headers=retry_after(full.retry_after),
        ) from None


@blueprint.post("/tasks")
@documented(
    TaskEnvelope,
    status=201,
    auth=True,
    json_body=TaskCreateJson,
    multipart=TaskCreateForm,
    headers=IdempotencyHeaders,
    errors={
        400: ("BAD_REQUEST", "INVALID_IMAGE", "INVALID_IDEMPOTENCY_KEY"),
        413: ("IMAGE_TOO_LARGE",),
        415: ("UNSUPPORTED_IMAGE_TYPE",),
        422: ("IDEMPOTENCY_KEY_REUSED", "CONFLICTING_FIELDS"),
        503: ("MAINTENANCE",),
        **QUOTA_ERRORS,
    },
)
async def create() -> Response:
    """Create a task (QUEUED); its actor runs it upstream. JSON or multipart/form-data."""
    caller = await principal()
    body, image = await _read_create_request()
    key = idempotency_key(body.client_request_id)
    wanted = shape(body)
    order = Order(body.prompt, wanted.model, wanted.size, wanted.duration, image=image)
    task, created = await create_task(caller.user_id, order, key)
    headers = {} if created else {"Idempotent-Replayed": "true"}
    return ok(task_wire(task), status=201, headers=headers)


class RemixRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    prompt: Prompt


@blueprint.post("/tasks/<video_id>/remix")
@documented(
    TaskEnvelope,
    status=201,
    auth=True,
    json_body=RemixRequest,
    headers=IdempotencyHeaders,
    errors={
        400: ("INVALID_IDEMPOTENCY_KEY",),
        404: ("TASK_NOT_FOUND",),
        409: ("TASK_NOT_COMPLETED",),
        422: ("IDEMPOTENCY_KEY_REUSED",),
        **QUOTA_ERRORS,
        503: ("MAINTENANCE",),
    },
)
async def remix(video_id: str) -> Response:
    """A new task made from a COMPLETED one with a new prompt (same model, size, length)."""
    caller = await principal()
    key = idempotency_key()
    raw = json_object(await request.get_json())
    try:
        body = RemixRequest.model_validate(raw)
    except ValidationError as error:
        raise invalid(validation_details(error)) from None
    source = await owned_task(video_id, caller.user_id)
    if source.status != Status.COMPLETED or source.external_video_id is None:
        raise ApiError(
            409,
            "TASK_NOT_COMPLETED",
            f"Only a COMPLETED task can be remixed; this one is {source.status}.",
            details={"status": source.status},
        )
    # The remix keeps the source's model, size and length (the upstream does the same).
    order = Order(
        body.prompt, source.model, source.size, source.duration, remixed_from=source.video_id
    )
    task, created = await create_task(caller.user_id, order, key)
    headers = {} if created else {"Idempotent-Replayed": "true"}
    return ok(task_wire(task), status=201, headers=headers)


@blueprint.get("/tasks/<video_id>")
@documented(TaskEnvelope, auth=True, errors={404: ("TASK_NOT_FOUND",)})
async def get_task(video_id: str) -> Response:
    """One of the caller's tasks (another user's task is a 404)."""
    caller = await principal()
    return ok(task_wire(await owned_task(video_id, caller.user_id)))


def _int_arg(name: str, default: int, low: int, high: int, problems: list[dict[str, str]]) -> int:
    """A query integer; out of range or not a number: noted in ``problems``, default used."""
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        problems.append({"field": name, "message": f"must be an integer from {low} to {high}"})
        return default
    return value


def _refuse(problems: list[dict[str, str]]) -> None:
    """400 VALIDATION_ERROR naming every bad field."""
    if problems:
        raise invalid(problems)


def _encode_cursor(task: Task) -> str:
    return base64.urlsafe_b64encode(f"{task.created_at}:{task.video_id}".encode()).decode()


def _decode_cursor(raw: str) -> tuple[int, str]:
    try:
        created, video_id = base64.urlsafe_b64decode(raw.encode()).decode().split(":", 1)
        moment = int(created)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        moment, video_id = -1, ""
    if not 0 <= moment < 2**63 or "\x00" in video_id or len(video_id) > 200:
        raise ApiError(400, "INVALID_CURSOR", "cursor: not a cursor this API issued")
    return moment, video_id


@blueprint.get("/tasks")
@documented(
    TaskPageEnvelope,
    auth=True,
    query=TaskListQuery,
    errors={400: ("VALIDATION_ERROR", "INVALID_CURSOR")},
)
async def list_tasks() -> Response:
    """The caller's tasks, a page at a time (page/pageSize, or keyset with cursor)."""
    caller = await principal()
    problems: list[dict[str, str]] = []
    page = _int_arg("page", 1, 1, 1_000_000, problems)
    page_size = _int_arg("pageSize", 20, 1, MAX_PAGE_SIZE, problems)
    status = request.args.get("status") or None
    if status is not None:
        status = status.upper()
        if status not in STATUSES:
            problems.append({"field": "status", "message": f"must be one of {', '.join(STATUSES)}"})
    order = (request.args.get("order") or "desc").lower()
    if order not in ("asc", "desc"):
        problems.append({"field": "order", "message": "must be asc or desc"})
    _refuse(problems)
    wanted = request.args.get("clientRequestId")
    if wanted:  # the old frontend finds its task again after a page reload
        found = await ctx().services.storage.tasks.by_idempotency_key(caller.user_id, wanted)
        matches = [found] if found is not None and status in (None, found.status) else []
        return ok(
            {
                "tasks": [task_wire(task) for task in matches],
                "total": len(matches),
                "page": 1,
                "pageSize": page_size,
                "nextCursor": None,
            }
        )
    raw_cursor = request.args.get("cursor")
    cursor = _decode_cursor(raw_cursor) if raw_cursor else None
    result = await ctx().services.storage.tasks.page(
        caller.user_id,
        status=status,
        descending=order == "desc",
        page=page,
        page_size=page_size,
        cursor=cursor,
    )
    next_cursor = _encode_cursor(result.tasks[-1]) if len(result.tasks) == page_size else None
    return ok(
        {
            "tasks": [task_wire(task) for task in result.tasks],
            "total": result.total,
            "page": page,
            "pageSize": page_size,
            "nextCursor": next_cursor,
        }
    )


@blueprint.post("/tasks/<video_id>/cancel")
@documented(
    TaskEnvelope,
    auth=True,
    errors={404: ("TASK_NOT_FOUND",), 409: ("TASK_ALREADY_FINISHED",)},
)
async def cancel(video_id: str) -> Response:
    """Cancel an unfinished task: it stops being polled and becomes CANCELLED."""
    caller = await principal()
    await owned_task(video_id, caller.user_id)
    outcome = await ctx().services.runtime.supervisor.cancel(
        video_id, _activity("task_cancel", caller.user_id, videoId=video_id)
    )
    if outcome is None:
        raise ApiError(404, "TASK_NOT_FOUND", f"No task {video_id}.")
    if not outcome.cancelled:
        raise ApiError(
            409,
            "TASK_ALREADY_FINISHED",
            f"The task already ended ({outcome.task.status}); it cannot be cancelled.",
            details={"status": outcome.task.status},
        )
    return ok(task_wire(outcome.task), message="Task cancelled.")


@blueprint.get("/stats")
@documented(StatsEnvelope, auth=True)
async def stats() -> Response:
    """The caller's task counts by status."""
    caller = await principal()
    counts = await ctx().services.storage.tasks.stats(caller.user_id)
    return ok({"total": sum(counts.values()), **{k.lower(): v for k, v in counts.items()}})
