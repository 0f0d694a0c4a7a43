"""How a route reaches the process's services and the front end's own helpers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from quart import current_app, request

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
    the account behind a valid token was deleted or disabled since it was issued."""
    return (await caller())[0]


async def caller() -> tuple[Principal, User]:
    """The caller and their account (one read); 401 in the envelope as for `principal`."""
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
    """The account a verified token names; TokenError if it is gone or disabled.

    A token outlives changes to its account, so each use looks the account up: one read by
    primary key per authenticated request or WebSocket ``auth``.
    """
    user = await context.services.storage.accounts.by_id(who.user_id)
    if user is None:
        raise TokenError("INVALID_TOKEN", "The account behind this token no longer exists.")
    if not user.is_active:
        raise TokenError("ACCOUNT_DISABLED", "This account is disabled.")
    return user


def client_address() -> str:
    """The client's address: the peer, or what trusted proxies say (`proxies.py`)."""
    return ctx().proxies.client(
        request.remote_addr,
        request.headers.getlist("Forwarded"),
        request.headers.getlist("X-Forwarded-For"),
    )
