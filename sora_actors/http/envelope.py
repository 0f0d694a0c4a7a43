"""The contract's envelopes: one way to say success, one way to say what went wrong.

Success: ``{"success": true, "data": ..., "message"?: ...}``.
Error:   ``{"success": false, "message": m, "error": {"code": C, "message": m, "details"?: d}}``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel
from quart import Response


def to_wire(value: Any) -> Any:
    """Models become camelCase JSON-able dicts; everything else passes through."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True)
    if isinstance(value, list | tuple):
        return [to_wire(item) for item in value]
    if isinstance(value, dict):
        return {key: to_wire(item) for key, item in value.items()}
    return value


def json_response(
    body: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    text = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    return Response(
        text, status=status, headers=dict(headers or {}), content_type="application/json"
    )


def ok(
    data: Any = None,
    *,
    status: int = 200,
    message: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    body: dict[str, Any] = {"success": True, "data": to_wire(data)}
    if message is not None:
        body["message"] = message
    return json_response(body, status, headers)


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        error["details"] = details
    return {"success": False, "message": message, "error": error}


class ApiError(Exception):
    """Raise anywhere under a route to answer with the error envelope."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        details: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.headers = dict(headers or {})

    def response(self) -> Response:
        return json_response(
            error_body(self.code, self.message, self.details), self.status, self.headers
        )
