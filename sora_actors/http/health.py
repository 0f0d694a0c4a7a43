"""``GET /health``: is this process fit to serve? 503 when the database does not answer."""

from __future__ import annotations

from typing import Any

import trio
from quart import Blueprint, Response

from ..clock import iso, wall_ms
from ..storage import StorageError
from .apidoc import documented
from .context import ctx
from .envelope import ApiError, ok
from .schemas import HealthEnvelope

blueprint = Blueprint("health", __name__)

PING_TIMEOUT_SECONDS = 2.0


@blueprint.get("/health")
@documented(HealthEnvelope)
async def health() -> Response:
    """Is this process fit to serve? No auth; 503 (details: the report) without a database."""
    services = ctx().services
    database: dict[str, Any] = {"dialect": services.storage.dialect}
    reachable = False
    with trio.move_on_after(PING_TIMEOUT_SECONDS):
        try:
            await services.storage.ping()
            reachable = True
        except StorageError as error:
            database["error"] = str(error)
    database["status"] = "ok" if reachable else "unreachable"
    report = {
        "status": "ok" if reachable else "degraded",
        "timestamp": iso(wall_ms()),
        "uptime": round(services.uptime_seconds(), 3),
        "version": services.version,
        "database": database,
    }
    if not reachable:
        raise ApiError(503, "DATABASE_UNAVAILABLE", "The database is unreachable.", details=report)
    return ok(report)
