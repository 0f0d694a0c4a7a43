"""``/files``: the bytes of our copies, for anyone holding a valid signed link.

- ``GET  /files/<id>/<variant>?exp=&sig=``    the bytes (Range requests), no login needed

The file route trusts the signature alone: the link is the permission, so a ``<video>``
element can play it without an Authorization header. This blueprint installs the signer
that makes and checks those links.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator

from quart import Blueprint, Response, request
from quart.blueprints import BlueprintSetupState

from ..clock import iso
from ..content_store import CONTENT_TYPES, content_key
from ..storage import Task
from . import signing
from .apidoc import documented
from .context import EXTENSION_KEY, HttpContext, ctx
from .envelope import ApiError
from .schemas import FileQuery, RangeHeaders
from .signing import SIGNER_KEY, UrlSigner, Verdict

blueprint = Blueprint("files", __name__)

# At most 18 digits: larger numbers are no file's offsets (and Python refuses to parse
# very long ones).
# What a reference image (the ``reference`` variant) may be: tasks accept these three.
REFERENCE_TYPES = ("image/png", "image/jpeg", "image/webp")
_RANGE = re.compile(r"^bytes=(\d{0,18})-(\d{0,18})$")


@blueprint.record_once
def _install_signer(state: BlueprintSetupState) -> None:
    context: HttpContext = state.app.extensions[EXTENSION_KEY]
    signer = UrlSigner.from_settings(context.services.settings)
    state.app.extensions[SIGNER_KEY] = signer
    signing.install(signer)


def _signer() -> UrlSigner:
    signer = signing.current_signer()
    assert signer is not None, "the files blueprint installs a signer"
    return signer


def expired(task: Task) -> ApiError:
    """410 CONTENT_EXPIRED: the copy is gone and the upstream no longer has it."""
    return ApiError(
        410,
        "CONTENT_EXPIRED",
        "This video's copy has been removed and the upstream no longer has it."
        if task.content_expired_at is not None
        else "This video is no longer available.",
        details={"contentExpiredAt": iso(task.content_expired_at)},
    )


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
    raw={
        200: (*CONTENT_TYPES.values(), *REFERENCE_TYPES),
        206: tuple(CONTENT_TYPES.values()),
    },
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
    if variant == signing.REFERENCE:
        return await _reference_image(video_id)
    task = await services.storage.tasks.get(video_id)
    if task is None or variant not in CONTENT_TYPES:
        raise ApiError(404, "CONTENT_NOT_FOUND", "No such file.")
    if task.content_expired_at is not None:
        raise expired(task)
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


async def _reference_image(video_id: str) -> Response:
    """The reference image a task was created with (the task JSON's ``referenceImage``)."""
    image = await ctx().services.storage.tasks.input_image(video_id)
    if image is None:
        raise ApiError(404, "CONTENT_NOT_FOUND", "No such file.")
    content_type, _filename, data = image
    response = Response(data, status=200, content_type=content_type)
    response.headers["Cache-Control"] = f"private, max-age={_max_age()}"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def _max_age() -> int:
    raw = request.args.get("exp", "0")
    valid = raw.isascii() and raw.isdigit() and len(raw) <= 12
    return max(0, int(raw) - int(time.time())) if valid else 0
