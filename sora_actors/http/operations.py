"""``/api/admin``: the activity log, the statistics and the run-time config, for ADMINs;
``/api/config/public``: the part of the run-time config every client may read.

Every admin route goes through `require_admin` (401 without a token, 403 otherwise).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from quart import Blueprint, Response, request

from ..clock import iso, wall_ms
from ..storage import Activity, LogEntry, LogQuery
from ..system_config import ConfigInvalid, validate
from .apidoc import documented
from .context import client_address, ctx, require_admin
from .envelope import ApiError, ok
from .ops_schemas import (
    ConfigEnvelope,
    ConfigPatchDoc,
    LogPageEnvelope,
    LogQueryDoc,
    PublicConfigEnvelope,
    StatisticsEnvelope,
)
from .tasks import MAX_PAGE_SIZE, _int_arg, _refuse

blueprint = Blueprint("operations", __name__, url_prefix="/api/admin")
public = Blueprint("public_config", __name__, url_prefix="/api/config")

ADMIN_ERRORS = {403: ("FORBIDDEN",)}
ACTION = re.compile(r"[a-z][a-z0-9_]{0,63}")
MAX_ID = 200


def _moment(name: str, problems: list[dict[str, str]]) -> int | None:
    """A query time: ISO 8601 (a date alone is its UTC midnight; no zone: UTC) or Unix ms."""
    raw = (request.args.get(name) or "").strip()
    if not raw:
        return None
    if raw.isascii() and raw.isdigit() and len(raw) <= 15:
        return int(raw)
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        problems.append({"field": name, "message": "must be an ISO 8601 time or Unix ms"})
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def _log_query() -> LogQuery:
    """The filters of ``GET /api/admin/logs``; 400 naming every bad one."""
    problems: list[dict[str, str]] = []
    action = request.args.get("action") or None
    if action is not None and not ACTION.fullmatch(action):
        problems.append(
            {"field": "action", "message": "must be an action name such as login or generate_video"}
        )
    user_id = request.args.get("userId") or None
    if user_id is not None and len(user_id) > MAX_ID:
        problems.append({"field": "userId", "message": f"must be at most {MAX_ID} characters"})
    since, until = _moment("from", problems), _moment("to", problems)
    if since is not None and until is not None and since > until:
        problems.append({"field": "from", "message": "must not be after to"})
    page = _int_arg("page", 1, 1, 1_000_000, problems)
    page_size = _int_arg("pageSize", 20, 1, MAX_PAGE_SIZE, problems)
    _refuse(problems)
    return LogQuery(action, user_id, since, until, page, page_size)


def _entry(entry: LogEntry) -> dict[str, object]:
    return {
        "id": entry.id,
        "userId": entry.user_id,
        "action": entry.action,
        "details": entry.details,
        "ip": entry.ip,
        "userAgent": entry.user_agent,
        "createdAt": iso(entry.created_at),
        "user": {"username": entry.username} if entry.username is not None else None,
    }


@blueprint.get("/logs")
@documented(
    LogPageEnvelope,
    auth=True,
    query=LogQueryDoc,
    errors={**ADMIN_ERRORS, 400: ("VALIDATION_ERROR",)},
)
async def logs() -> Response:
    """The activity log, newest first, filtered by action, user and time."""
    await require_admin()
    query = _log_query()
    entries, total = await ctx().services.storage.operations.log_page(query)
    return ok(
        {
            "items": [_entry(entry) for entry in entries],
            "total": total,
            "page": query.page,
            "pageSize": query.page_size,
        }
    )


@blueprint.get("/statistics")
@blueprint.get("/stats")
@documented(StatisticsEnvelope, auth=True, errors=ADMIN_ERRORS)
async def statistics() -> Response:
    """Users, tasks, upstream jobs, stored videos and licences (``/stats``: the old name)."""
    await require_admin()
    now = wall_ms()
    figures = await ctx().services.storage.operations.statistics(now)
    return ok({**figures, "generatedAt": iso(now)})


@blueprint.get("/config")
@documented(ConfigEnvelope, auth=True, errors=ADMIN_ERRORS)
async def get_config() -> Response:
    """The run-time settings as this instance applies them."""
    await require_admin()
    return ok(ctx().services.runtime.config.current().wire())


def plan_names() -> frozenset[str] | None:
    """The plans the settings define, when they define any (the licences work adds them)."""
    plans = getattr(ctx().services.settings, "plans", None)
    return frozenset(plans) if plans else None


@blueprint.put("/config")
@documented(
    ConfigEnvelope,
    auth=True,
    json_body=ConfigPatchDoc,
    errors={**ADMIN_ERRORS, 400: ("VALIDATION_ERROR",)},
)
async def put_config() -> Response:
    """Change some of the run-time settings; every instance applies them within a second."""
    _, admin = await require_admin()
    raw = await request.get_json()
    try:
        changes = validate(raw, plan_names())
    except ConfigInvalid as invalid:
        raise ApiError(400, "VALIDATION_ERROR", str(invalid), details=invalid.problems) from None
    activity = Activity(
        "admin_config_update", admin.id, None, client_address(), request.headers.get("User-Agent")
    )
    config = await ctx().services.runtime.config.update(changes, activity)
    return ok(config.wire(), message="Settings saved.")


@public.get("/public")
@documented(PublicConfigEnvelope)
async def public_config() -> Response:
    """What any client may know (no token needed): registration, maintenance, announcement."""
    wire = ctx().services.runtime.config.current().wire()
    return ok({key: wire[key] for key in ("registrationOpen", "maintenance", "announcement")})
