"""CORS for the configured origins (the old test pages run from file://, origin "null")."""

from __future__ import annotations

from quart import Quart, Response, request

from ..settings import Settings

ALLOWED_HEADERS = "Authorization, Content-Type, Idempotency-Key, X-Request-Id"
EXPOSED_HEADERS = "Retry-After, X-Request-Id, Content-Range, Accept-Ranges"
ALLOWED_METHODS = "GET, POST, PUT, PATCH, DELETE, OPTIONS"


def install(app: Quart, settings: Settings) -> None:
    @app.after_request
    async def _cors(response: Response) -> Response:
        if request.method == "OPTIONS" and response.status_code == 200:
            # Quart's automatic OPTIONS answer is an empty text/html 200: a preflight's
            # answer is 204 No Content, with no body and no content type.
            allow = response.headers.get("Allow")
            response = Response(b"", status=204, headers={"Allow": allow} if allow else {})
            del response.headers["Content-Type"]
        origin = request.headers.get("Origin")
        if origin is None or not settings.allows_origin(origin):
            return response
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Vary"] = "Origin"
        response.headers["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
        if request.method == "OPTIONS":
            response.headers["Access-Control-Allow-Methods"] = ALLOWED_METHODS
            response.headers["Access-Control-Allow-Headers"] = ALLOWED_HEADERS
            response.headers["Access-Control-Max-Age"] = "600"
        return response
