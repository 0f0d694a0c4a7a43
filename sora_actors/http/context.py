"""How a route reaches the process's services and the front end's own helpers."""

from __future__ import annotations

from dataclasses import dataclass

from quart import current_app, request

from ..services import Services
from .security import Passwords, Principal, Tokens
from .throttle import LoginThrottle

EXTENSION_KEY = "sora_actors"


@dataclass
class HttpContext:
    services: Services
    passwords: Passwords
    tokens: Tokens
    login_throttle: LoginThrottle


def ctx() -> HttpContext:
    context: HttpContext = current_app.extensions[EXTENSION_KEY]
    return context


def principal() -> Principal:
    """The caller, from the Authorization header; 401 in the envelope otherwise."""
    return ctx().tokens.verify_header(request.headers.get("Authorization"))


def client_address() -> str:
    return request.remote_addr or "unknown"
