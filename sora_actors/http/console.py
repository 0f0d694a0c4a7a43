"""The web console: a no-build HTML/JS page served by the backend itself.

Served from the same origin as the API and ``/ws`` so that the page needs no CORS and no
configuration: it finds both on ``location``. Only files that exist directly in ``static/``
with a known type are served, so a request can never walk out of that folder.
"""

from __future__ import annotations

from pathlib import Path

import trio
from quart import Blueprint, Response
from quart.blueprints import BlueprintSetupState

from .envelope import ApiError

blueprint = Blueprint("console", __name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
}

# The page loads nothing from elsewhere; media may come from wherever the backend signs it.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: blob: http: https:",
        "media-src 'self' blob: http: https:",
        "connect-src 'self' ws: wss:",
        "object-src 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    ]
)


async def _serve(name: str) -> Response:
    """One file of ``static/``; 404 in the envelope for anything else."""
    suffix = Path(name).suffix.lower()
    content_type = CONTENT_TYPES.get(suffix)
    # A bare file name only: no separators, no dot-files, nothing that could climb out.
    plain = name and "/" not in name and "\\" not in name and not name.startswith(".")
    path = STATIC_DIR / name
    if content_type is None or not plain or path.parent != STATIC_DIR or not path.is_file():
        raise ApiError(404, "NOT_FOUND", f"No console file named {name!r}.")
    body = await trio.Path(path).read_bytes()
    return Response(
        body,
        content_type=content_type,
        headers={
            # Small files that change with each release: always revalidate, never stale.
            "Cache-Control": "no-cache",
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": CONTENT_SECURITY_POLICY,
            "Referrer-Policy": "no-referrer",
        },
    )


@blueprint.get("/")
async def index() -> Response:
    return await _serve("index.html")


@blueprint.get("/static/<path:name>")
async def static_file(name: str) -> Response:
    return await _serve(name)


async def _app_static(filename: str) -> Response:
    return await _serve(filename)


@blueprint.record_once
def _take_over_app_static(state: BlueprintSetupState) -> None:
    """Quart gives every app a ``/static/<path:filename>`` route of its own (the package's
    ``static/`` folder, which sora_actors does not have), and that rule matches before ours.
    Point it at the console's files so ``/static/...`` works whether or not the app was
    created with ``static_folder=None``."""
    if "static" in state.app.view_functions:
        state.app.view_functions["static"] = _app_static
