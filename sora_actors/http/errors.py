"""Every failure leaves as the error envelope: no HTML pages, no stack traces."""

from __future__ import annotations

import logging
from typing import Any

from pydantic import ValidationError
from quart import Quart, Response, has_websocket_context, request, websocket
from quart_schema import RequestSchemaValidationError
from werkzeug.exceptions import HTTPException

from ..storage import StorageUnavailable
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
        details = validation_details(error.validation_error)
        first = details[0]
        message = f"{first['field']}: {first['message']}"
        return ApiError(400, "VALIDATION_ERROR", message, details=details).response()

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

    @app.errorhandler(StorageUnavailable)
    async def _storage(error: StorageUnavailable) -> Response:
        log.warning("database unavailable: %s", error)
        return ApiError(
            503,
            "DATABASE_UNAVAILABLE",
            "The database is unavailable; try again shortly.",
            headers={"Retry-After": "5"},
        ).response()

    @app.errorhandler(Exception)
    async def _unexpected(error: Exception) -> Response:
        log.exception("unhandled error on %s", _target())
        return ApiError(500, "INTERNAL_ERROR", "Something went wrong on our side.").response()
