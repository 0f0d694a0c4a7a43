"""``/api/license``: activate a key, check one (no login), and the caller's plan and usage.

Keys are guessed by trying, if by anything: `validate` and `activate` are limited per
client address (``license_checks_per_address`` per ``license_checks_period_seconds``), and
a wrong key costs the same as a right one (one lookup by hash). Keys never appear in an
answer, a log line or an activity entry; licences are shown masked.
"""

from __future__ import annotations

from dataclasses import dataclass

from quart import Blueprint, Quart, Response, current_app
from quart_schema import validate_request

from .. import licence_keys
from ..clock import iso
from ..settings import Plan, Settings
from ..storage.licences import ActivationRefused, Licence
from ..storage.quota import Usage
from .apidoc import documented
from .context import caller, client_address, ctx
from .envelope import ApiError, ok
from .licence_schemas import (
    ActivateRequest,
    LicenseInfoEnvelope,
    LicenseInfoOut,
    LicenseOut,
    PlanOut,
    UsageOut,
    ValidateEnvelope,
    ValidateOut,
    ValidateRequest,
)
from .ratelimit import RateLimiter, admit
from .tasks import _activity as activity

blueprint = Blueprint("licences", __name__, url_prefix="/api/license")
_LIMITER_KEY = "sora_actors.license_checks"

# Why an activation is refused: status, code, message.
_REFUSALS: dict[str, tuple[int, str, str]] = {
    "UNKNOWN": (404, "LICENSE_NOT_FOUND", "No such licence key."),
    "REVOKED": (403, "LICENSE_REVOKED", "This licence was revoked."),
    "EXPIRED": (403, "LICENSE_EXPIRED", "This licence has expired."),
    "BOUND_ELSEWHERE": (
        409,
        "LICENSE_BOUND_ELSEWHERE",
        "This licence is already activated by another account or on another device.",
    ),
}
CHECK_ERRORS = {
    400: ("INVALID_LICENSE_KEY",),
    429: ("TOO_MANY_LICENSE_CHECKS",),
}


def install(app: Quart, settings: Settings) -> None:
    """The per-address limiter of key checks, and the routes."""
    if settings.license_checks_per_address:
        app.extensions[_LIMITER_KEY] = RateLimiter(
            settings.license_checks_per_address, settings.license_checks_period_seconds
        )
    app.register_blueprint(blueprint)


def _key_hash(text: str) -> str:
    """The key's hash, after the address's attempt was counted; 400 when it is no key."""
    limiter: RateLimiter | None = current_app.extensions.get(_LIMITER_KEY)
    if limiter is not None:
        message = "Too many licence key checks from this address"
        admit(limiter, client_address(), "TOO_MANY_LICENSE_CHECKS", message)
    try:
        return licence_keys.digest(text)
    except licence_keys.BadKey as bad:
        raise ApiError(
            400, "INVALID_LICENSE_KEY", str(bad), details={"field": "licenseKey"}
        ) from None


@dataclass(frozen=True, slots=True)
class Standing:
    """A user's plan and what is used of it, as of ``now``."""

    plan_name: str
    plan: Plan
    usage: Usage
    licence: Licence | None  # the one giving the plan, else the latest (or None)
    now: int

    def plan_out(self) -> PlanOut:
        plan = self.plan
        return PlanOut(
            name=self.plan_name,
            max_running=plan.max_running or None,
            tasks_per_day=plan.tasks_per_day or None,
            tasks_per_30_days=plan.tasks_per_30_days or None,
            max_duration_seconds=plan.max_duration_seconds or None,
            models=plan.models if plan.models == "*" else list(plan.models),
            sizes=plan.sizes if plan.sizes == "*" else list(plan.sizes),
            image_to_video=plan.image_to_video,
        )

    def usage_out(self) -> UsageOut:
        return UsageOut(
            running=self.usage.running,
            tasks_last_24_hours=self.usage.day,
            tasks_last_30_days=self.usage.thirty_days,
        )

    def info(self) -> LicenseInfoOut:
        shown = self.licence
        return LicenseInfoOut(
            license=licence_out(shown, self.now) if shown is not None else None,
            plan=self.plan_out(),
            usage=self.usage_out(),
        )


async def standing(user_id: str) -> Standing:
    """The user's plan (from their licences) and usage, read together."""
    services = ctx().services
    licences, used, now = await services.storage.licences.standing(user_id)
    name, plan, giving = services.runtime.plans.of(licences, now)
    latest = max(licences, key=lambda item: item.activated_at or 0, default=None)
    return Standing(name, plan, used, giving or latest, now)


def licence_out(licence: Licence, now: int) -> LicenseOut:
    return LicenseOut(
        id=licence.id,
        license_key=licence_keys.masked(licence.key_last4),
        type=licence.type,  # type: ignore[arg-type]
        status=licence.state(now),  # type: ignore[arg-type]
        device_id=licence.device_id,
        activated_at=iso(licence.activated_at),
        expires_at=iso(licence.expires_at),
    )


@blueprint.post("/activate")
@documented(
    LicenseInfoEnvelope,
    auth=True,
    json_body=ActivateRequest,
    errors={
        **CHECK_ERRORS,
        403: ("LICENSE_REVOKED", "LICENSE_EXPIRED"),
        404: ("LICENSE_NOT_FOUND",),
        409: ("LICENSE_BOUND_ELSEWHERE",),
    },
)
@validate_request(ActivateRequest)
async def activate(data: ActivateRequest) -> Response:
    """Bind a licence key to the caller (and to a device, when one is named): its plan
    applies to the caller's next task. Answers the caller's plan and usage."""
    _, user = await caller()
    key_hash = _key_hash(data.license_key)
    try:
        _, changed = await ctx().services.storage.licences.activate(
            key_hash, user.id, data.device_id, activity("activate_license", user.id)
        )
    except ActivationRefused as refused:
        status, code, message = _REFUSALS[refused.reason]
        raise ApiError(status, code, message) from None
    message = "Licence activated." if changed else "Licence already active for this account."
    return ok((await standing(user.id)).info(), message=message)


@blueprint.post("/validate")
@documented(ValidateEnvelope, json_body=ValidateRequest, errors=CHECK_ERRORS)
@validate_request(ValidateRequest)
async def validate(data: ValidateRequest) -> Response:
    """Whether a key may be used (on ``deviceId``): VALID, UNKNOWN, EXPIRED, REVOKED or
    BOUND_ELSEWHERE, and nothing more. No login needed; limited per address."""
    key_hash = _key_hash(data.license_key)
    status = await ctx().services.storage.licences.check(key_hash, data.device_id)
    return ok(ValidateOut(valid=status == "VALID", status=status))  # type: ignore[arg-type]


@blueprint.get("/info")
@documented(LicenseInfoEnvelope, auth=True)
async def info() -> Response:
    """The caller's licence (masked), plan, and usage: running tasks, tasks created in the
    last 24 hours and 30 days (the windows the plan's limits count in)."""
    _, user = await caller()
    return ok((await standing(user.id)).info())
