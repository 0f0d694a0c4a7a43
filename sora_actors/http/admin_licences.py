"""``/api/admin/licenses`` and ``/api/admin/license/generate``: the operators' licences.

Every route is for active admins only (`require_admin`); every change is logged with the
admin's id (``admin_license_generate``, ``admin_license_revoke``) and never with a key.
A new key is in the generate answer and nowhere else, ever: only its hash is stored.
"""

from __future__ import annotations

from quart import Blueprint, Response, request
from quart_schema import validate_request

from .. import licence_keys
from ..clock import iso, wall_ms
from ..settings import LICENSE_TYPES
from ..storage.licences import Licence, LicenceState
from .apidoc import documented
from .context import ctx, require_admin
from .envelope import ApiError, ok
from .licence_schemas import (
    AdminLicenseEnvelope,
    AdminLicenseOut,
    AdminLicensePage,
    AdminLicensePageEnvelope,
    GeneratedEnvelope,
    GeneratedOut,
    GenerateRequest,
    LicenseListQuery,
    LicenseUserOut,
)
from .tasks import MAX_PAGE_SIZE, _int_arg, _refuse
from .tasks import _activity as activity

blueprint = Blueprint("admin_licences", __name__, url_prefix="/api/admin")
ADMIN_ERRORS = {403: ("FORBIDDEN",)}


def admin_licence_out(licence: Licence, now: int) -> AdminLicenseOut:
    user = None
    if licence.username is not None:
        user = LicenseUserOut(username=licence.username, email=licence.email)
    return AdminLicenseOut(
        id=licence.id,
        license_key=licence_keys.masked(licence.key_last4),
        type=licence.type,  # type: ignore[arg-type]
        status=licence.state(now),  # type: ignore[arg-type]
        user_id=licence.user_id,
        is_active=licence.is_active,
        device_id=licence.device_id,
        features=licence.features,
        duration_days=licence.duration_days,
        activated_at=iso(licence.activated_at),
        expires_at=iso(licence.expires_at),
        created_at=iso(licence.created_at),
        user=user,
    )


def _choice(name: str, allowed: tuple[str, ...], problems: list[dict[str, str]]) -> str | None:
    """An optional query value out of ``allowed`` (any case); wrong: noted in ``problems``."""
    raw = (request.args.get(name) or "").upper() or None
    if raw is not None and raw not in allowed:
        problems.append({"field": name, "message": f"must be one of {', '.join(allowed)}"})
        return None
    return raw


@blueprint.get("/licenses")
@documented(
    AdminLicensePageEnvelope,
    auth=True,
    query=LicenseListQuery,
    errors={**ADMIN_ERRORS, 400: ("VALIDATION_ERROR",)},
)
async def list_licences() -> Response:
    """Every licence, newest first, keys masked, with its user; filters type and status."""
    await require_admin()
    problems: list[dict[str, str]] = []
    page = _int_arg("page", 1, 1, 1_000_000, problems)
    page_size = _int_arg("pageSize", 20, 1, MAX_PAGE_SIZE, problems)
    kind = _choice("type", LICENSE_TYPES, problems)
    state = _choice("status", LicenceState.ALL, problems)
    _refuse(problems)
    storage = ctx().services.storage
    result = await storage.licences.page(kind=kind, state=state, page=page, page_size=page_size)
    now = wall_ms()
    return ok(
        AdminLicensePage(
            items=[admin_licence_out(licence, now) for licence in result.items],
            total=result.total,
            page=page,
            page_size=page_size,
        )
    )


@blueprint.post("/license/generate")
@documented(
    GeneratedEnvelope, status=201, auth=True, json_body=GenerateRequest, errors=ADMIN_ERRORS
)
@validate_request(GenerateRequest)
async def generate(data: GenerateRequest) -> Response:
    """New licence keys (``count``, default 1, at most 1000): shown in this answer only."""
    _, admin = await require_admin()
    count = data.count or 1
    keys = [licence_keys.generate() for _ in range(count)]
    stored = [(licence_keys.digest(key), licence_keys.last_four(key)) for key in keys]
    entry = activity(
        "admin_license_generate",
        admin.id,
        type=data.type,
        count=count,
        durationDays=data.duration_days,
    )
    ids = await ctx().services.storage.licences.generate(
        stored, data.type, data.duration_days, admin.id, entry
    )
    answer = GeneratedOut(type=data.type, duration_days=data.duration_days, count=count)
    if count == 1:
        answer = answer.model_copy(update={"license_key": keys[0], "id": ids[0]})
    else:
        answer = answer.model_copy(update={"license_keys": keys, "ids": ids})
    return ok(
        answer.model_dump(mode="json", by_alias=True, exclude_none=True),
        status=201,
        message="Keep these keys now: they are not shown again.",
    )


@blueprint.post("/licenses/<licence_id>/revoke")
@documented(
    AdminLicenseEnvelope,
    auth=True,
    errors={**ADMIN_ERRORS, 404: ("LICENSE_NOT_FOUND",)},
)
async def revoke(licence_id: str) -> Response:
    """Revoke a licence: its user's next task already gets the default plan. Revoking a
    revoked licence changes nothing and logs nothing."""
    _, admin = await require_admin()
    entry = activity("admin_license_revoke", admin.id, licenseId=licence_id)
    outcome = await ctx().services.storage.licences.revoke(licence_id, admin.id, entry)
    if outcome is None:
        raise ApiError(404, "LICENSE_NOT_FOUND", f"No licence {licence_id}.")
    licence, changed = outcome
    message = "Licence revoked." if changed else "The licence was already revoked."
    return ok(admin_licence_out(licence, wall_ms()), message=message)
