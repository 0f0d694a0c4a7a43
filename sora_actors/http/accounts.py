"""``/api/auth``: register, log in, who am I, is my token still good, log out."""

from __future__ import annotations

from quart import Blueprint, Response, request
from quart_schema import validate_request

from ..clock import iso
from ..storage import Activity, Conflict, NewSession, User
from .apidoc import documented
from .context import caller, client_address, ctx
from .envelope import ApiError, ok
from .licence_schemas import MeStandingEnvelope, MeStandingOut
from .licences import standing
from .models import LoginOut, LoginRequest, LogoutOut, MeOut, RegisterRequest, UserOut, VerifyOut
from .ratelimit import admit
from .schemas import LoginEnvelope, LogoutEnvelope, UserEnvelope, VerifyEnvelope

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
    return ok(user_out(user), status=201)


def user_out(user: User) -> UserOut:
    return UserOut(id=user.id, username=user.username, email=user.email, role=user.role)


def me_out(user: User) -> MeOut:
    return MeOut(
        id=user.id,
        username=user.username,
        email=user.email,
        role=user.role,
        is_active=user.is_active,
        last_login=iso(user.last_login),
        created_at=iso(user.created_at),
    )


@blueprint.post("/login")
@documented(
    LoginEnvelope,
    json_body=LoginRequest,
    errors={
        401: ("INVALID_CREDENTIALS",),
        403: ("ACCOUNT_DISABLED", "ACCOUNT_BANNED"),
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
    if user.banned:
        raise ApiError(403, "ACCOUNT_BANNED", "This account is banned.")
    token, who = context.tokens.issue(user.id, user.username)
    session = NewSession(
        who.session_id,
        user.id,
        who.expires_at_ms,
        client_address(),
        request.headers.get("User-Agent"),
    )
    await context.services.runtime.access.login(session, _activity("login", user.id))
    return ok(LoginOut(token=token, user=user_out(user), expires_at=who.expires_at_ms))


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


@blueprint.get("/verify")
@documented(VerifyEnvelope, auth=True)
async def verify() -> Response:
    """Whether the token is still good (200 with the user), else 401 saying why
    (INVALID_TOKEN, TOKEN_EXPIRED, SESSION_REVOKED, ACCOUNT_DISABLED, ACCOUNT_BANNED)."""
    _, user = await caller()
    return ok(VerifyOut(valid=True, user=me_out(user)))


@blueprint.post("/logout")
@documented(LogoutEnvelope, auth=True)
async def logout() -> Response:
    """End the token's session: it is refused from now on, by REST and ``/ws``, on every
    instance (open WebSocket connections of the session are closed with 4401)."""
    who, _ = await caller()
    await ctx().services.runtime.access.logout(
        who.session_id, who.user_id, _activity("logout", who.user_id)
    )
    return ok(LogoutOut(session_id=who.session_id, revoked=True), message="Logged out.")
