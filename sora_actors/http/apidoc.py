"""The API's description: per-route declarations, the OpenAPI generator and ``/docs``.

Routes declare what they answer with `documented` (success envelope, error statuses with
their machine codes, body, query, headers, auth); quart-schema turns that into
``/openapi.json`` from the pydantic models in `schemas`. Statuses every route of a kind can
return (401 for protected routes, 400/413/415 for JSON bodies, 503/507 for storage, 500) are
added here, once. quart-schema's own docs pages load their UI from a CDN, which these
machines cannot reach, so ``/docs`` is a small page of ours that renders the document.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

import trio
from pydantic import BaseModel
from quart import Blueprint, Response
from quart_schema import (
    OpenAPIProvider,
    document_headers,
    document_querystring,
    document_request,
    document_response,
    hide,
    security_scheme,
)
from werkzeug.routing.converters import BaseConverter
from werkzeug.routing.rules import Rule

from .envelope import ApiError
from .ratelimit import request_kind
from .schemas import ErrorEnvelope

F = TypeVar("F", bound=Callable[..., Any])

DOC_ATTRIBUTE = "_sora_route_doc"
BEARER = "bearerAuth"

AUTH_ERRORS = (
    "AUTH_REQUIRED",
    "INVALID_TOKEN",
    "TOKEN_EXPIRED",
    "ACCOUNT_DISABLED",
    "ACCOUNT_BANNED",
    "SESSION_REVOKED",
)
JSON_BODY_ERRORS: dict[int, tuple[str, ...]] = {
    400: ("INVALID_JSON", "JSON_TOO_DEEP", "DUPLICATE_KEY", "VALIDATION_ERROR"),
    413: ("PAYLOAD_TOO_LARGE",),
    415: ("UNSUPPORTED_MEDIA_TYPE",),
}
STORAGE_ERRORS: dict[int, tuple[str, ...]] = {
    503: ("DATABASE_UNAVAILABLE",),
    507: ("STORAGE_FULL",),
}
RETRY_AFTER_STATUSES = (429, 503, 507)

API_DESCRIPTION = """\
REST API of sora-actors (live progress: WebSocket at `/ws`, see the frontend contract).

Every JSON answer is an envelope. Success: `{"success": true, "data": ..., "message"?: ...}`.
Error: `{"success": false, "message": "...", "error": {"code": "MACHINE_CODE", "message":
"...", "details"?: ...}}`; each response below lists the codes its status can carry.
Validation errors (400 VALIDATION_ERROR) name each offending field in `error.details`
(`[{"field": ..., "message": ...}]`).

JSON is read strictly (request bodies and WebSocket messages alike): a key given twice is
400 DUPLICATE_KEY naming it (never "the last one wins"); arrays/objects nested deeper than
`SORA_MAX_JSON_DEPTH` (default 32) are 400 JSON_TOO_DEEP, refused before parsing; `NaN`,
`Infinity`, numbers beyond a double and half a UTF-16 surrogate pair (`"\\ud800"`) are
400 INVALID_JSON. Numbers are not read from strings: a field documented as an integer
(`duration`, `seconds`) must be a JSON integer; `"10"`, `10.0` and `true` are 400
VALIDATION_ERROR naming the field (multipart form fields are text, so there plain digits
are the integer).

Usernames are NFKC-normalised (full-width letters become ASCII), then must be 3 to 32
ASCII letters, digits, `_`, `.` or `-`, matched in full: no trailing newline, no spaces,
control, zero-width or bidi characters, no letters of other scripts that look like Latin
ones. Login normalises the same way; a name that cannot exist is 400 VALIDATION_ERROR.

Protected routes need `Authorization: Bearer <jwt>` (from `POST /api/auth/login`); a token
whose account was deleted since is 401 INVALID_TOKEN, one whose account was disabled 401
ACCOUNT_DISABLED, banned 401 ACCOUNT_BANNED, one whose session ended (`POST
/api/auth/logout`, a password reset) 401 SESSION_REVOKED. `/api/admin/*` routes also answer
403 FORBIDDEN to a token of a non-admin.
Every response carries `X-Request-Id` (the caller's, if sane, else generated); quote it
when reporting a problem.

Task creation (JSON, multipart, remix) follows the caller's plan (their licence's, else the
default one; `GET /api/license/info`): 403 PLAN_FORBIDS names the model, size, duration or
image-to-video the plan leaves out (`error.details.field`); 429 QUOTA_EXCEEDED says which
count is reached (`error.details`: `limit`, `used`, `window` = running, 24h or 30d) and
`Retry-After` when another try may succeed. A repeated Idempotency-Key still gets its task.

A personal API key (`sk-sora-...`, made at `POST /api/auth/api-keys` and shown only then)
works wherever a token does: `Authorization: Bearer sk-sora-...`. An unknown key is 401
INVALID_API_KEY, a revoked one 401 API_KEY_REVOKED (at once), a disabled account's 401
ACCOUNT_DISABLED. Keys are managed with a login token only (403 FORBIDDEN with a key).

`/api/relay/v1/videos` (alias `/api/relay/sora/videos`) serves OpenAI's Videos API on top of
these tasks, for the `openai` SDKs (`base_url=<server>/api/relay/v1`, a personal key or a
token as the API key). It speaks OpenAI's shapes, errors included (`{"error": {"message",
"type", "param", "code"}}`), so it is described by OpenAI's reference, not in this document;
the README lists what it maps and where it differs.
"""


@dataclass(frozen=True)
class RouteDoc:
    """What `documented` recorded for the generator's post-processing."""

    success: int
    errors: Mapping[int, tuple[str, ...]]
    # status -> content types of a non-JSON answer (files, metrics)
    raw: Mapping[int, tuple[str, ...]] = field(default_factory=dict)
    multipart: type[BaseModel] | None = None
    body_required: bool = False


# One Server-Sent Event (before OpenAPI 3.2, an event stream's schema describes each event).
SSE_EVENT_SCHEMA = {
    "type": "object",
    "properties": {
        "event": {"type": "string", "description": "taskUpdate"},
        "data": {"type": "string", "description": "JSON: the WebSocket event's payload + type"},
        "id": {"type": "string", "description": "the cursor to resume from (Last-Event-ID)"},
        "retry": {"type": "integer"},
    },
}


def _raw_media(kind: str) -> dict[str, Any]:
    """A raw answer's media entry: bytes, or for an event stream, one event."""
    if kind == "text/event-stream":
        return {"schema": copy.deepcopy(SSE_EVENT_SCHEMA)}
    return {"schema": {"type": "string", "format": "binary"}}


def documented(
    ok: type[BaseModel] | None,
    *,
    status: int = 200,
    errors: Mapping[int, Sequence[str]] | None = None,
    auth: bool = False,
    storage: bool = True,
    json_body: type[BaseModel] | None = None,
    multipart: type[BaseModel] | None = None,
    query: type[BaseModel] | None = None,
    headers: type[BaseModel] | None = None,
    raw: Mapping[int, Sequence[str]] | None = None,
) -> Callable[[F], F]:
    """Declare a route's answers for ``/openapi.json``: success model and error codes.

    ``ok`` is the success envelope model (None for raw answers, given in ``raw``). The
    statuses implied by ``auth``, ``json_body`` and ``storage`` are added, and 500 always.
    """
    merged: dict[int, list[str]] = {}

    def add(code_status: int, codes: Iterable[str]) -> None:
        bucket = merged.setdefault(code_status, [])
        bucket.extend(code for code in codes if code not in bucket)

    for error_status, codes in (errors or {}).items():
        add(error_status, codes)
    if auth:
        add(401, AUTH_ERRORS)
    if json_body is not None or multipart is not None:
        for error_status, codes in JSON_BODY_ERRORS.items():
            add(error_status, codes)
    if storage:
        for error_status, codes in STORAGE_ERRORS.items():
            add(error_status, codes)
    if query is not None:
        add(400, ("INVALID_CHARACTER",))  # a NUL in a query value (refused in app.py)
    add(500, ("INTERNAL_ERROR",))
    doc = RouteDoc(
        success=status,
        errors={key: tuple(merged[key]) for key in sorted(merged)},
        raw={key: tuple(types) for key, types in (raw or {}).items()},
        multipart=multipart,
        body_required=json_body is not None,
    )

    def decorate(view: F) -> F:
        if ok is not None:
            view = document_response(ok, status)(view)
        for error_status in doc.errors:
            view = document_response(ErrorEnvelope, error_status)(view)
        if json_body is not None:
            view = document_request(json_body)(view)
        if query is not None:
            view = document_querystring(query)(view)
        if headers is not None:
            view = document_headers(headers)(view)
        if auth:
            view = security_scheme([{BEARER: []}])(view)
        setattr(view, DOC_ATTRIBUTE, doc)
        return view

    return decorate


def _schema_of(model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    schema.pop("$defs", None)
    return schema


def _not_null(schema: dict[str, Any]) -> dict[str, Any]:
    """``anyOf: [X, null]`` as X: a query parameter, header or form field is never null."""
    variants = schema.get("anyOf")
    if isinstance(variants, list):
        kept = [variant for variant in variants if variant != {"type": "null"}]
        if len(kept) == 1 and len(kept) < len(variants):
            rest = {k: v for k, v in schema.items() if k not in ("anyOf", "default")}
            schema = {**kept[0], **rest}
    schema.pop("title", None)
    if schema.get("default", 0) is None:
        del schema["default"]
    return schema


def _hoist(media: dict[str, Any], components: dict[str, Any]) -> None:
    """Move a named top-level body schema into components and refer to it."""
    schema = media.get("schema")
    if isinstance(schema, dict) and isinstance(schema.get("title"), str):
        name = schema.pop("title")
        components[name] = schema
        media["schema"] = {"$ref": f"#/components/schemas/{name}"}


def _rate_limited(doc: RouteDoc, method: str, path: str) -> RouteDoc:
    """The route's doc with 429 RATE_LIMITED when the API rate limits apply to it."""
    if request_kind(method.upper(), path) is None:
        return doc
    errors = {**doc.errors, 429: (*doc.errors.get(429, ()), "RATE_LIMITED")}
    return replace(doc, errors={key: errors[key] for key in sorted(errors)})


class SoraOpenAPI(OpenAPIProvider):
    """quart-schema's generator plus what it cannot express from decorators alone."""

    def generate_rules(self) -> Iterable[Rule]:
        # Only declared API routes: the console's pages and the docs themselves are not API.
        for rule in super().generate_rules():
            if hasattr(self._app.view_functions[rule.endpoint], DOC_ATTRIBUTE):
                yield rule

    def build_path_parameter(self, name: str, converter: BaseConverter) -> dict[str, Any]:
        parameter = super().build_path_parameter(name, converter)
        if parameter["schema"] == {"type": "string"}:
            # Werkzeug's default converter: one non-empty path segment.
            parameter["schema"] = {"type": "string", "minLength": 1, "pattern": "^[^/]+$"}
        return parameter

    def build_paths(self, rule: Rule) -> tuple[dict[str, Any], dict[str, Any]]:
        paths, components = super().build_paths(rule)
        doc: RouteDoc = getattr(self._app.view_functions[rule.endpoint], DOC_ATTRIBUTE)
        for operations in paths.values():
            for method, operation in operations.items():
                self._complete(operation, _rate_limited(doc, method, rule.rule), components)
        return paths, components

    def _complete(
        self, operation: dict[str, Any], doc: RouteDoc, components: dict[str, Any]
    ) -> None:
        if not operation.get("description"):
            operation.pop("description", None)
        operation["parameters"] = [
            {**parameter, "schema": _not_null(dict(parameter["schema"]))}
            for parameter in operation["parameters"]
        ]
        responses: dict[int, Any] = dict(operation["responses"])
        for status in doc.errors.keys() - responses.keys():  # added here, not by decorators
            responses[status] = copy.deepcopy(responses[500])
        for status, types in doc.raw.items():
            responses[status] = {"content": {kind: _raw_media(kind) for kind in types}}
        for status, response in responses.items():
            response = dict(response)
            for media in response.get("content", {}).values():
                _hoist(media, components)
            if status in doc.errors:
                codes = doc.errors[status]
                response["description"] = "Error envelope; error.code: " + ", ".join(codes)
                response["x-error-codes"] = list(codes)
            elif not response.get("description"):
                response["description"] = "Success"
            headers: dict[str, Any] = {
                "X-Request-Id": {
                    "description": "The request's id (echoed if the caller sent a sane one)",
                    "required": True,
                    "schema": {"type": "string"},
                }
            }
            if status in RETRY_AFTER_STATUSES:
                headers["Retry-After"] = {
                    "description": "Seconds to wait before trying again",
                    "schema": {"type": "string"},
                }
            response["headers"] = headers
            responses[status] = response
        operation["responses"] = {str(status): responses[status] for status in sorted(responses)}
        body = operation.get("requestBody")
        if doc.multipart is not None:
            form = _schema_of(doc.multipart)
            form["properties"] = {
                name: _not_null(field) for name, field in form["properties"].items()
            }
            body = body or {"content": {}}
            body["content"] = {**body["content"], "multipart/form-data": {"schema": form}}
        if body is not None:
            body = {**body, "required": doc.body_required or doc.multipart is not None}
            for media in body["content"].values():
                _hoist(media, components)
            operation["requestBody"] = body


# -- /docs ----------------------------------------------------------------------------------

blueprint = Blueprint("apidoc", __name__)

PAGE_DIR = Path(__file__).resolve().parent / "apidocs"
PAGE_FILES = {
    "index.html": "text/html; charset=utf-8",
    "docs.js": "text/javascript; charset=utf-8",
    "docs.css": "text/css; charset=utf-8",
}
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; frame-ancestors 'none'"
)


async def _page_file(name: str) -> Response:
    if name not in PAGE_FILES:
        raise ApiError(404, "NOT_FOUND", f"No docs file named {name!r}.")
    body = await trio.Path(PAGE_DIR / name).read_bytes()
    return Response(
        body,
        content_type=PAGE_FILES[name],
        headers={
            "Cache-Control": "no-cache",
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": CONTENT_SECURITY_POLICY,
        },
    )


@blueprint.get("/docs")
@hide
async def docs_page() -> Response:
    """The API reference page: renders /openapi.json in the browser, nothing from a CDN."""
    return await _page_file("index.html")


@blueprint.get("/docs/<name>")
@hide
async def docs_asset(name: str) -> Response:
    return await _page_file(name)
