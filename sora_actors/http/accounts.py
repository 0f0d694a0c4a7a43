"""``/api/auth``: register, log in, who am I."""

from __future__ import annotations

from quart import Blueprint, Response, request
from quart_schema import validate_request

from ..clock import iso
from ..storage import Activity, Conflict
from .apidoc import documented
from .context import caller, client_address, ctx
from .envelope import ApiError, ok
from .licence_schemas import MeStandingEnvelope, MeStandingOut
from .licences import standing
from .models import LoginOut, LoginRequest, RegisterRequest, UserOut
from .ratelimit import admit
from .schemas import LoginEnvelope, UserEnvelope

blueprint = Blueprint("accounts", __name__, url_prefix="/api/auth")

INVALID_CREDENTIALS = "Invalid username or password."


def _activity(action: str, user_id: str | None = None, **details: object) -> Activity:
    return Activity(
        action=action,
        user_id=user_id,
        details=details or None,
        ip=client_address(),
        user_agent=request.headers.get("User-Agent"),
    )


@blueprint.post("/register")
@documented(
    UserEnvelope,
    status=201,
    json_body=RegisterRequest,
    errors={
        403: ("REGISTRATION_CLOSED",),
        409: ("USERNAME_TAKEN", "EMAIL_TAKEN"),
        429: ("TOO_MANY_REGISTRATIONS",),
        503: ("SERVER_BUSY",),
    },
)
@validate_request(RegisterRequest)
async def register(data: RegisterRequest) -> Response:
    """Create an account (unless an operator closed registration: 403 REGISTRATION_CLOSED)."""
    context = ctx()
    if not context.services.runtime.config.current().registration_open:
        raise ApiError(403, "REGISTRATION_CLOSED", "Registration is closed.")
    if context.registrations is not None:
        message = "Too many registrations from this address"
        admit(context.registrations, client_address(), "TOO_MANY_REGISTRATIONS", message)
    password_hash = await context.passwords.hash(data.password)
    try:
        user = await context.services.storage.accounts.create_user(
            data.username, data.email, password_hash, _activity("register")
        )
    except Conflict as clash:
        code = "EMAIL_TAKEN" if clash.field == "email" else "USERNAME_TAKEN"
        raise ApiError(409, code, str(clash), details={"field": clash.field}) from None
    return ok(UserOut(id=user.id, username=user.username, email=user.email), status=201)


@blueprint.post("/login")
@documented(
    LoginEnvelope,
    json_body=LoginRequest,
    errors={
        401: ("INVALID_CREDENTIALS",),
        403: ("ACCOUNT_DISABLED",),
        429: ("TOO_MANY_LOGIN_ATTEMPTS",),
        503: ("SERVER_BUSY",),
    },
)
@validate_request(LoginRequest)
async def login(data: LoginRequest) -> Response:
    """Log in: a bearer token (JWT) and when it expires (Unix ms)."""
    context = ctx()
    accounts = context.services.storage.accounts
    with context.login_throttle.attempt(client_address(), data.username) as attempt:
        user = await accounts.by_username(data.username)
        good = await context.passwords.verify(data.password, user.password_hash if user else None)
        if user is None or not good:
            attempt.failed()
            await accounts.log(
                _activity("login_failed", user.id if user else None, username=data.username)
            )
            raise ApiError(401, "INVALID_CREDENTIALS", INVALID_CREDENTIALS)
    if not user.is_active:
        raise ApiError(403, "ACCOUNT_DISABLED", "This account is disabled.")
    await accounts.record_login(user.id, _activity("login", user.id))
    token, who = context.tokens.issue(user.id, user.username)
    return ok(
        LoginOut(
            token=token,
            user=UserOut(id=user.id, username=user.username, email=user.email),
            expires_at=who.expires_at_ms,
        )
    )


@blueprint.get("/me")
@documented(MeStandingEnvelope, auth=True)
async def me() -> Response:
    """The account behind the token, its plan and what is used of it."""
    _, user = await caller()
    held = await standing(user.id)
    return ok(
        MeStandingOut(
            id=user.id,
            username=user.username,
            email=user.email,
            role=user.role,
            is_active=user.is_active,
            last_login=iso(user.last_login),
            created_at=iso(user.created_at),
            plan=held.plan_out(),
            usage=held.usage_out(),
        )
    )
