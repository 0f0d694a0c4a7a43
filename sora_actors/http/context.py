"""How a route reaches the process's services and the front end's own helpers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from quart import current_app, request

from ..access import Refused
from ..services import Services
from ..storage import User
from . import keyauth
from .envelope import ApiError
from .proxies import TrustedProxies
from .security import Passwords, Principal, TokenError, Tokens

if TYPE_CHECKING:  # the limiters import this module to reach the context
    from .ratelimit import RateLimiter
    from .throttle import LoginThrottle
    from .wslimits import WsLimits

EXTENSION_KEY = "sora_actors"


@dataclass
class HttpContext:
    services: Services
    passwords: Passwords
    tokens: Tokens
    login_throttle: LoginThrottle
    registrations: RateLimiter | None
    proxies: TrustedProxies
    ws_limits: WsLimits


def ctx() -> HttpContext:
    context: HttpContext = current_app.extensions[EXTENSION_KEY]
    return context


async def principal() -> Principal:
    """The caller, from the Authorization header; 401 in the envelope otherwise, also when
    the account behind a valid token was deleted, disabled or banned, or its session
    revoked (logout), since it was issued."""
    return (await caller())[0]


async def caller() -> tuple[Principal, User]:
    """The caller and their account as they are now (from the access cache, not a read per
    request: `sora_actors/access.py`); 401 in the envelope as for `principal`."""
    context = ctx()
    header = request.headers.get("Authorization")
    if (key := keyauth.bearer_key(header)) is not None:  # a personal API key (keyauth.py)
        return await keyauth.verify_key(key)
    who = context.tokens.verify_header(header)
    try:
        return who, await live_account(context, who)
    except TokenError as error:
        raise ApiError(401, error.code, error.message) from None


async def require_admin() -> tuple[Principal, User]:
    """The caller, who must be an active ADMIN: 401 without a good token, 403 otherwise."""
    who, user = await caller()
    if user.role != "ADMIN":
        raise ApiError(403, "FORBIDDEN", "This needs an administrator.")
    return who, user


async def live_account(context: HttpContext, who: Principal) -> User:
    """The account a verified token names; TokenError if it is gone, disabled or banned,
    or the token's session was revoked.

    A token outlives changes to its account, so each use asks the access cache, which is
    as current as a read (it is dropped on every change, on every instance).
    """
    try:
        return await context.services.runtime.access.check(who.user_id, who.session_id)
    except Refused as refused:
        raise TokenError(refused.code, refused.message) from None


def client_address() -> str:
    """The client's address: the peer, or what trusted proxies say (`proxies.py`)."""
    return ctx().proxies.client(
        request.remote_addr,
        request.headers.getlist("Forwarded"),
        request.headers.getlist("X-Forwarded-For"),
    )
