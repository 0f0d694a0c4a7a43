"""Every failure leaves as the error envelope: no HTML pages, no stack traces."""

from __future__ import annotations

import logging
from typing import Any

from pydantic import ValidationError
from quart import Quart, Response, has_websocket_context, request, websocket
from quart_schema import RequestSchemaValidationError
from werkzeug.exceptions import HTTPException

from ..storage import Fault, StorageError, classify
from .envelope import ApiError

log = logging.getLogger("sora_actors.http")

_CODES = {
    400: ("BAD_REQUEST", "The request is malformed."),
    401: ("UNAUTHORIZED", "Authentication is required."),
    403: ("FORBIDDEN", "You may not do this."),
    404: ("NOT_FOUND", "No such resource."),
    405: ("METHOD_NOT_ALLOWED", "This method is not allowed here."),
    408: ("REQUEST_TIMEOUT", "The request took too long to arrive."),
    413: ("PAYLOAD_TOO_LARGE", "The request body is too large."),
    415: ("UNSUPPORTED_MEDIA_TYPE", "This content type is not accepted here."),
}


def validation_details(error: Exception) -> list[dict[str, Any]]:
    """One entry per offending field: ``{"field": "a.b", "message": ...}``."""
    if isinstance(error, ValidationError):
        return [
            {
                "field": ".".join(str(part) for part in item["loc"]) or "body",
                "message": item["msg"].removeprefix("Value error, "),
            }
            for item in error.errors(include_url=False, include_input=False)
        ]
    return [{"field": "body", "message": str(error)}]


def invalid(details: list[dict[str, Any]]) -> ApiError:
    """400 VALIDATION_ERROR: ``details`` lists every bad field and the message names them all."""
    message = "; ".join(f"{item['field']}: {item['message']}" for item in details)
    return ApiError(400, "VALIDATION_ERROR", message or "the request is invalid", details=details)


def _target() -> str:
    """``METHOD /path`` of the request (``WS /path`` for a WebSocket handshake)."""
    if has_websocket_context():
        return f"WS {websocket.path}"
    return f"{request.method} {request.path}"


def install(app: Quart) -> None:
    """Register the handlers that turn exceptions into envelopes."""

    @app.errorhandler(ApiError)
    async def _api_error(error: ApiError) -> Response:
        return error.response()

    @app.errorhandler(RequestSchemaValidationError)
    async def _invalid(error: RequestSchemaValidationError) -> Response:
        return invalid(validation_details(error.validation_error)).response()

    @app.errorhandler(HTTPException)
    async def _http(error: HTTPException) -> Response:
        status = error.code or 500
        code, message = _CODES.get(status, ("HTTP_ERROR", error.description or "HTTP error"))
        if status == 404:
            message = f"No route for {_target()}."
        headers = {}
        if status == 405 and getattr(error, "valid_methods", None):
            headers["Allow"] = ", ".join(sorted(error.valid_methods))  # type: ignore[attr-defined]
        return ApiError(status, code, message, headers=headers).response()

    @app.errorhandler(StorageError)
    async def _storage(error: StorageError) -> Response:
        return _storage_response(error, classify(error))

    @app.errorhandler(Exception)
    async def _unexpected(error: Exception) -> Response:
        fault = classify(error)
        if fault is Fault.FULL:  # say, the content store's disk (an OSError ENOSPC)
            return _storage_response(error, fault)
        log.exception("unhandled error on %s", _target())
        return ApiError(500, "INTERNAL_ERROR", "Something went wrong on our side.").response()


# What each kind of storage failure answers (see storage.errors.classify).
_STORAGE_ANSWERS: dict[Fault, tuple[int, str, str, str | None]] = {
    Fault.UNAVAILABLE: (
        503,
        "DATABASE_UNAVAILABLE",
        "The database is unavailable; try again shortly.",
        "5",
    ),
    Fault.FULL: (
        507,
        "STORAGE_FULL",
        "The server's storage is full; nothing was saved. Try again later.",
        "30",
    ),
    Fault.CONFLICT: (409, "CONFLICT", "A concurrent change got there first; try again.", None),
}


def _storage_response(error: Exception, fault: Fault) -> Response:
    answer = _STORAGE_ANSWERS.get(fault)
    if answer is None:  # a bug, or a damaged database
        log.error("storage error on %s", _target(), exc_info=error)
        return ApiError(500, "INTERNAL_ERROR", "Something went wrong on our side.").response()
    status, code, message, retry_after = answer
    log.warning("storage %s on %s: %s", fault.value, _target(), error)
    headers = {"Retry-After": retry_after} if retry_after else {}
    return ApiError(status, code, message, headers=headers).response()
