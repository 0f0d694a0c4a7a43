"""``GET /health``: is this process fit to serve? 503 when the database does not answer;
``degraded`` when a disk is full or no upstream channel is usable."""

from __future__ import annotations

from typing import Any

import trio
from quart import Blueprint, Response

from ..channels import ChannelStatistics
from ..clock import iso, wall_ms
from ..storage import StorageError
from .apidoc import documented
from .context import ctx
from .envelope import ApiError, ok
from .schemas import HealthEnvelope

blueprint = Blueprint("health", __name__)

PING_TIMEOUT_SECONDS = 2.0


def channel_report(c: ChannelStatistics) -> dict[str, Any]:
    """One channel's health, as /health and the admin API show it."""
    return {
        "name": c.name,
        "dialect": c.dialect,
        "priority": c.priority,
        "weight": c.weight,
        "state": c.state,
        "disabledReason": c.disabled_reason,
        "jobsRunning": c.jobs_running,
        "errorRate": c.error_rate,
        "latencyMs": c.latency_ms,
        "retryIn": c.retry_in_s,
    }


@blueprint.get("/health")
@documented(HealthEnvelope)
async def health() -> Response:
    """Is this process fit to serve? No auth; 503 (details: the report) without a database.
    A full disk (database or content store) is reported as ``degraded`` with 200: the
    process is up and serves reads, and it recovers by itself when space returns."""
    services = ctx().services
    storage = services.storage
    database: dict[str, Any] = {"dialect": storage.dialect}
    reachable = writable = False
    with trio.move_on_after(PING_TIMEOUT_SECONDS):
        try:
            await storage.ping()
            reachable = True
            writable = await storage.writable()
        except StorageError as error:
            database["error"] = str(error)
    database["status"] = "ok" if writable else "full" if reachable else "unreachable"
    if reachable and not writable:
        database["fullSince"] = iso(storage.full_since)
    keeper = services.runtime.content
    content: dict[str, Any] = {
        "status": "ok" if keeper.full_since is None else "full",
        "fullSince": iso(keeper.full_since),
        "pendingSpace": len(keeper.pending_space),
    }
    channels = [channel_report(c) for c in services.runtime.channels.statistics()]
    # No usable channel: new tasks wait (or fail), though reads and open tasks are served.
    usable = any(c["state"] in ("closed", "half_open") for c in channels)
    healthy = writable and keeper.full_since is None and usable
    report = {
        "status": "ok" if healthy else "degraded",
        "timestamp": iso(wall_ms()),
        "uptime": round(services.uptime_seconds(), 3),
        "version": services.version,
        "database": database,
        "content": content,
        "channels": channels,
    }
    if not reachable:
        raise ApiError(503, "DATABASE_UNAVAILABLE", "The database is unreachable.", details=report)
    return ok(report)
