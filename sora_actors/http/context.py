"""How a route reaches the process's services and the front end's own helpers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from quart import current_app, request

from ..services import Services
from .proxies import TrustedProxies
from .security import Passwords, Principal, Tokens

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


def principal() -> Principal:
    """The caller, from the Authorization header; 401 in the envelope otherwise."""
    return ctx().tokens.verify_header(request.headers.get("Authorization"))


def client_address() -> str:
    """The client's address: the peer, or what trusted proxies say (`proxies.py`)."""
    return ctx().proxies.client(
        request.remote_addr,
        request.headers.getlist("Forwarded"),
        request.headers.getlist("X-Forwarded-For"),
    )
