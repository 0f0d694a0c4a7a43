"""Playing finished videos: signed links, the file route, refreshing links, remixing.

- ``GET  /api/video/tasks/<id>/content``      a signed link to our copy (COMPLETED only)
- ``POST /api/video/tasks/<id>/refresh-url``  a fresh link; fetches the copy again if lost
- ``POST /api/video/tasks/<id>/remix``        a new task made from a completed one
- ``GET  /files/<id>/<variant>?exp=&sig=``    the bytes (Range requests), no login needed

The file route trusts the signature alone: the link is the permission, so a ``<video>``
element can play it without an Authorization header; the upstream API key never leaves
the server.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator

from pydantic import BaseModel, ConfigDict, ValidationError
from quart import Blueprint, Response, request
from quart.blueprints import BlueprintSetupState

from ..clock import iso, wall_ms
from ..content import CONTENT_TYPES, ContentGone, content_key
from ..lifecycle import Status
from ..storage import Task
from ..task_service import Order
from ..upstream import ErrorKind, UpstreamError
from . import signing
from .apidoc import documented
from .context import EXTENSION_KEY, HttpContext, ctx, principal
from .envelope import ApiError, ok
from .errors import validation_details
from .models import Prompt
from .schemas import (
    ContentLinkEnvelope,
    FileQuery,
    IdempotencyHeaders,
    RangeHeaders,
    RefreshedUrlEnvelope,
    TaskEnvelope,
)
from .signing import SIGNER_KEY, UrlSigner, Verdict
from .tasks import create_task, idempotency_key, owned_task
from .wire import task_wire

blueprint = Blueprint("content", __name__)

# At most 18 digits: larger numbers are no file's offsets (and Python refuses to parse
# very long ones).
_RANGE = re.compile(r"^bytes=(\d{0,18})-(\d{0,18})$")


@blueprint.record_once
def _install_signer(state: BlueprintSetupState) -> None:
    context: HttpContext = state.app.extensions[EXTENSION_KEY]
    signer = UrlSigner.from_settings(context.services.settings)
    state.app.extensions[SIGNER_KEY] = signer
    signing.install(signer)


def _signer() -> UrlSigner:
    signer = signing.current_signer()
    assert signer is not None, "the content blueprint installs a signer"
    return signer


def _require_completed(task: Task) -> None:
    if task.status != Status.COMPLETED:
        raise ApiError(
            409,
            "TASK_NOT_COMPLETED",
            f"The task is {task.status}; its video exists only once it is COMPLETED.",
            details={"status": task.status},
        )


def _expired(task: Task) -> ApiError:
    return ApiError(
        410,
        "CONTENT_EXPIRED",
        "This video's copy has been removed and the upstream no longer has it."
        if task.content_expired_at is not None
        else "This video is no longer available.",
        details={"contentExpiredAt": iso(task.content_expired_at)},
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
        raise _expired(fresh) from None
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
        raise _expired(task)
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


class RemixRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    prompt: Prompt


@blueprint.post("/api/video/tasks/<video_id>/remix")
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
    },
)
async def remix(video_id: str) -> Response:
    """A new task made from a COMPLETED one with a new prompt (same model, size, length)."""
    caller = await principal()
    key = idempotency_key()
    raw = await request.get_json()
    if not isinstance(raw, dict):
        raise ApiError(400, "VALIDATION_ERROR", "body: must be a JSON object")
    try:
        body = RemixRequest.model_validate(raw)
    except ValidationError as error:
        details = validation_details(error)
        first = details[0]
        raise ApiError(
            400, "VALIDATION_ERROR", f"{first['field']}: {first['message']}", details=details
        ) from None
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


# -- the file route ---------------------------------------------------------------------


def _byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(start, end inclusive) for a single satisfiable range; None: send everything.

    Raises 416 for a well-formed range that lies outside the file. A malformed header or
    several ranges are ignored (RFC 9110 allows a server to answer 200 with the whole).
    """
    if not header:
        return None
    match = _RANGE.fullmatch(header.strip())
    if match is None:
        return None
    first, last = match.groups()
    if first == "" and last == "":
        return None
    if first == "":  # suffix: the last N bytes
        length = int(last)
        if length == 0 or size == 0:  # an empty file has no last bytes to send
            raise _unsatisfiable(size)
        return max(0, size - length), size - 1
    start = int(first)
    end = size - 1 if last == "" else min(int(last), size - 1)
    if last != "" and int(last) < start:
        return None  # invalid: ignore
    if start >= size:
        raise _unsatisfiable(size)
    return start, end


def _unsatisfiable(size: int) -> ApiError:
    return ApiError(
        416,
        "RANGE_NOT_SATISFIABLE",
        f"The requested range is outside the file ({size} bytes).",
        headers={"Content-Range": f"bytes */{size}", "Accept-Ranges": "bytes"},
    )


@blueprint.route("/files/<video_id>/<variant>", methods=["GET"])
@documented(
    None,
    query=FileQuery,
    headers=RangeHeaders,
    raw={200: tuple(CONTENT_TYPES.values()), 206: tuple(CONTENT_TYPES.values())},
    errors={
        403: ("CONTENT_URL_EXPIRED", "CONTENT_URL_INVALID"),
        404: ("CONTENT_NOT_FOUND",),
        410: ("CONTENT_EXPIRED",),
        416: ("RANGE_NOT_SATISFIABLE",),
    },
)
async def media_file(video_id: str, variant: str) -> Response:
    """The bytes of a stored video or thumbnail; the signed link is the permission."""
    verdict = _signer().verify(video_id, variant, request.args.get("exp"), request.args.get("sig"))
    if verdict is Verdict.EXPIRED:
        raise ApiError(
            403,
            "CONTENT_URL_EXPIRED",
            "This link has expired; ask the API for a fresh one (refresh-url).",
        )
    if verdict is not Verdict.VALID:
        raise ApiError(403, "CONTENT_URL_INVALID", "This link is not valid.")
    services = ctx().services
    task = await services.storage.tasks.get(video_id)
    if task is None or variant not in CONTENT_TYPES:
        raise ApiError(404, "CONTENT_NOT_FOUND", "No such file.")
    if task.content_expired_at is not None:
        raise _expired(task)
    store = services.runtime.content.store
    key = content_key(video_id, variant)
    size = await store.size(key) if variant in task.stored_variants else None
    if size is None:
        raise ApiError(
            404,
            "CONTENT_NOT_FOUND",
            "The file is not here; POST refresh-url on the task to fetch it again.",
        )
    etag = f'"{size:x}-{task.content_stored_at or 0:x}"'
    byte_range = _byte_range(request.headers.get("Range"), size)
    if_range = request.headers.get("If-Range")
    if byte_range is not None and if_range is not None and if_range != etag:
        byte_range = None  # the client's partial copy is of another version: send it all
    start, end = byte_range if byte_range is not None else (0, size - 1)
    length = end - start + 1
    headers = {
        "Accept-Ranges": "bytes",
        "Content-Length": str(length),
        "ETag": etag,
        "Cache-Control": f"private, max-age={_max_age()}",
        "X-Content-Type-Options": "nosniff",
    }
    if byte_range is not None:
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"

    async def body() -> AsyncIterator[bytes]:
        async for chunk in store.read(key, start, length):
            yield chunk

    response = Response(
        # HEAD: b"", not None (Quart iterates None as a sync iterable on an asyncio executor,
        # which fails under Trio once the headers are out).
        body() if request.method != "HEAD" else b"",
        status=206 if byte_range is not None else 200,
        content_type=CONTENT_TYPES[variant],
    )
    response.headers.update(headers)  # after the body: Content-Length is the file's, not b""'s
    response.timeout = None  # a long video on a slow link must not be cut off at 60 s
    return response


def _max_age() -> int:
    raw = request.args.get("exp", "0")
    valid = raw.isascii() and raw.isdigit() and len(raw) <= 12
    return max(0, int(raw) - int(time.time())) if valid else 0
