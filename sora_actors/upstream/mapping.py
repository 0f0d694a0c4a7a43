"""Pure functions that translate between frontend terms, upstream dialects and our types.

Kept free of I/O so the whole app (API validation, actors, tests) can share them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from .provider import ErrorKind, SubmitRequest, UpstreamError, UpstreamJob, UpstreamStatus

DEFAULT_MODEL_MAP: Mapping[str, str] = {"sora_video2": "sora-2"}
OPENAI_SECONDS: tuple[int, ...] = (4, 8, 12)

_STATUS_MAP: Mapping[str, UpstreamStatus] = {
    "queued": UpstreamStatus.QUEUED,
    "submitted": UpstreamStatus.QUEUED,
    "pending": UpstreamStatus.QUEUED,
    "waiting": UpstreamStatus.QUEUED,
    "in_progress": UpstreamStatus.IN_PROGRESS,
    "processing": UpstreamStatus.IN_PROGRESS,
    "running": UpstreamStatus.IN_PROGRESS,
    "generating": UpstreamStatus.IN_PROGRESS,
    "completed": UpstreamStatus.COMPLETED,
    "succeeded": UpstreamStatus.COMPLETED,
    "success": UpstreamStatus.COMPLETED,
    "failed": UpstreamStatus.FAILED,
    "failure": UpstreamStatus.FAILED,
    "error": UpstreamStatus.FAILED,
    "cancelled": UpstreamStatus.CANCELLED,
    "canceled": UpstreamStatus.CANCELLED,
}

_POLICY_MARKERS = ("policy", "moderation", "safety", "content_filter", "blocked")


def map_model(name: str, model_map: Mapping[str, str] = DEFAULT_MODEL_MAP) -> str:
    """Frontend model name -> upstream model name; unknown names pass through unchanged."""
    return model_map.get(name, name)


def map_seconds(seconds: int | str, allowed: Sequence[int] = OPENAI_SECONDS) -> str:
    """Frontend duration -> nearest allowed upstream value, as the string the API wants.

    Ties round up (10 s with 8/12 allowed -> "12"): a user asking for 10 s would
    rather get a bit more than lose the end of the clip.
    """
    if not allowed:
        raise ValueError("allowed seconds must not be empty")
    want = int(seconds)
    best = min(allowed, key=lambda a: (abs(a - want), -a))
    return str(best)


def is_policy_code(text: str | None) -> bool:
    """Whether an error code (or message) says moderation or a content policy refused it."""
    hay = (text or "").lower()
    return any(marker in hay for marker in _POLICY_MARKERS)


def may_have_created(
    job: UpstreamJob,
    request: SubmitRequest,
    model_map: Mapping[str, str] = DEFAULT_MODEL_MAP,
    allowed_seconds: Sequence[int] = OPENAI_SECONDS,
) -> bool:
    """Whether submitting ``request`` through a provider with these maps may have created
    ``job``: the same prompt, and model, size and length as sent (or as asked, or not
    echoed by the upstream)."""
    return (
        job.prompt == request.prompt
        and job.model in (None, map_model(request.model, model_map), request.model)
        and job.size in (None, request.size)
        and job.seconds
        in (None, map_seconds(request.seconds, allowed_seconds), str(request.seconds))
    )


def normalize_status(raw: object) -> UpstreamStatus:
    """Any dialect's status string -> UpstreamStatus; unrecognised -> UNKNOWN (never done)."""
    if not isinstance(raw, str):
        return UpstreamStatus.UNKNOWN
    return _STATUS_MAP.get(raw.strip().lower(), UpstreamStatus.UNKNOWN)


def _num(v: object) -> float | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            return None
    return None


def _str(v: object) -> str | None:
    if v is None:
        return None
    if isinstance(v, (str, int, float)) and not isinstance(v, bool):
        return str(v)
    return None


def _job_error(raw: object) -> tuple[str | None, str | None]:
    if raw is None:
        return None, None
    if isinstance(raw, str):
        return ("error", raw) if raw else (None, None)
    if isinstance(raw, Mapping):
        code = _str(raw.get("code")) or _str(raw.get("type")) or "error"
        msg = _str(raw.get("message")) or code
        return code, msg
    return "error", str(raw)


def job_from_wire(obj: object, *, poll_after_s: float | None = None) -> UpstreamJob:
    """Parse a Video object of any dialect; raises MALFORMED when it is not one."""
    if not isinstance(obj, Mapping):
        raise UpstreamError(
            ErrorKind.MALFORMED, f"expected a video object, got {type(obj).__name__}"
        )
    job_id = obj.get("id")
    if not isinstance(job_id, str) or not job_id:
        raise UpstreamError(ErrorKind.MALFORMED, "video object without an id")
    status = normalize_status(obj.get("status"))
    progress_raw = _num(obj.get("progress"))
    progress = 0 if progress_raw is None else max(0, min(100, int(progress_raw)))
    error_code, error_message = _job_error(obj.get("error"))
    if status is UpstreamStatus.COMPLETED and error_code is None:
        progress = 100
    direct = _str(obj.get("video_url")) or _str(obj.get("url"))
    return UpstreamJob(
        id=job_id,
        status=status,
        progress=progress,
        model=_str(obj.get("model")),
        size=_str(obj.get("size")),
        seconds=_str(obj.get("seconds")),
        created_at=_num(obj.get("created_at")),
        completed_at=_num(obj.get("completed_at")),
        expires_at=_num(obj.get("expires_at")),
        remixed_from=_str(obj.get("remixed_from_video_id")) or _str(obj.get("remixed_from")),
        error_code=error_code,
        error_message=error_message,
        direct_url=direct,
        poll_after_s=poll_after_s,
        prompt=_str(obj.get("prompt")),
    )


def parse_error_body(body: bytes) -> tuple[str, str | None, str | None]:
    """Error body of any known shape -> (message, code, type).

    Handles `{"error": {...}}`, `{"error": "text"}`, a JSON document nested
    inside `message`, `{"message": ...}` and plain text.
    """
    text = body.decode("utf-8", "replace").strip()
    try:
        doc: Any = json.loads(text) if text else None
    except ValueError:
        return (text[:500] or "no body"), None, None
    for _ in range(3):  # unwrap JSON nested in message at most a few levels
        err = doc.get("error") if isinstance(doc, Mapping) else None
        if isinstance(err, str):
            return err, None, None
        if isinstance(err, Mapping):
            msg = _str(err.get("message")) or ""
            code = _str(err.get("code"))
            typ = _str(err.get("type"))
            inner: Any = None
            if msg.startswith("{"):
                try:
                    inner = json.loads(msg)
                except ValueError:
                    inner = None
            if isinstance(inner, Mapping):
                doc = inner if "error" in inner else {"error": inner}
                continue
            return (msg or code or "error"), code, typ
        if isinstance(doc, Mapping) and isinstance(doc.get("message"), str):
            return str(doc["message"]), _str(doc.get("code")), _str(doc.get("type"))
        break
    return (text[:500] or "no body"), None, None


def classify_http_error(
    status: int, body: bytes, *, retry_after_s: float | None = None
) -> UpstreamError:
    """HTTP error response -> UpstreamError with the right kind."""
    message, code, typ = parse_error_body(body)
    return classify_error(status, message, code, typ, retry_after_s=retry_after_s)


def classify_error(
    status: int,
    message: str,
    code: str | None,
    typ: str | None,
    *,
    retry_after_s: float | None = None,
) -> UpstreamError:
    """Status plus parsed error fields -> UpstreamError (shared by HTTP and in-memory providers)."""
    hay = " ".join(x for x in (code, typ, message) if x).lower()
    kind: ErrorKind
    if status == 429:
        kind = ErrorKind.QUOTA if ("quota" in hay or "billing" in hay) else ErrorKind.RATE_LIMITED
    elif status == 401:
        kind = ErrorKind.AUTH
    elif status == 403:
        kind = ErrorKind.CONTENT_POLICY if is_policy_code(hay) else ErrorKind.QUOTA
    elif status == 404 or status == 410:
        kind = ErrorKind.NOT_FOUND
    elif status == 408:
        kind = ErrorKind.TIMEOUT
    elif status == 409 or status >= 500:
        kind = ErrorKind.TRANSIENT
    elif 400 <= status < 500:
        kind = ErrorKind.CONTENT_POLICY if is_policy_code(hay) else ErrorKind.INVALID_REQUEST
    else:
        kind = ErrorKind.MALFORMED
    return UpstreamError(kind, message, status=status, code=code, retry_after_s=retry_after_s)


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """`retry-after-ms` (finer, preferred) or `retry-after` -> seconds; dates are ignored."""
    ms = headers.get("retry-after-ms")
    if ms is not None:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    s = headers.get("retry-after")
    if s is not None:
        try:
            return max(0.0, float(s))
        except ValueError:
            return None
    return None


def parse_poll_after(headers: Mapping[str, str]) -> float | None:
    """`openai-poll-after-ms` -> seconds."""
    raw = headers.get("openai-poll-after-ms")
    if raw is None:
        return None
    try:
        return max(0.0, float(raw) / 1000.0)
    except ValueError:
        return None
