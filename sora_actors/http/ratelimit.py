"""Rate limits: how often a key (an address, a user) may do something, and the API's own.

`RateLimiter` is GCRA (the generic cell rate algorithm): ``limit`` events per ``period``,
with a burst of up to ``limit``, then one every ``period / limit``. It keeps one float per
key, so memory is bounded by ``max_keys`` (least recently seen forgotten first), and it
reads Trio's clock, so tests run it in virtual time.

The API limits live in memory, per instance, and each instance enforces its share of the
configured limit (``limit / rate_limit_instances``). Why not in PostgreSQL: every request
would become a write to one hot row per user and per address, on the path of the cheapest
reads; and these limits guard against abuse, they are not quotas that must be exact. A
load balancer spreading requests over n instances gives each about 1/n of a client's
requests, so the sum stays close to the configured limit.
"""

from __future__ import annotations

import contextlib
import math
from collections import OrderedDict

import trio
from quart import Quart, request

from ..settings import Settings
from . import keyauth
from .context import client_address, ctx
from .envelope import ApiError

# Task routes whose requests create work upstream (ours and the OpenAI door's, `relay.py`);
# every other request under these prefixes is a read.
_CREATE_SUFFIXES = ("/tasks", "/remix", "/videos")
_API_PREFIX = ("/api/video/", "/api/relay/")


def retry_after(wait: float) -> dict[str, str]:
    """The ``Retry-After`` header for a wait in seconds (whole seconds, at least 1)."""
    return {"Retry-After": str(max(1, math.ceil(wait)))}


def too_many(code: str, message: str, wait: float, **details: str) -> ApiError:
    """A 429 that says how long to wait, in the message and in ``Retry-After``."""
    return ApiError(
        429,
        code,
        f"{message}; try again in {max(1, math.ceil(wait))} s.",
        details=details or None,
        headers=retry_after(wait),
    )


def admit(limiter: RateLimiter, key: str, code: str, message: str) -> None:
    """Count an event for ``key``, or refuse it: 429 with ``code`` and ``Retry-After``."""
    wait = limiter.acquire(key)
    if wait > 0:
        raise too_many(code, message, wait)


class RateLimiter:
    """At most ``limit`` events per ``period`` seconds per key (GCRA)."""

    def __init__(self, limit: float, period: float, max_keys: int = 100_000) -> None:
        if limit <= 0 or period <= 0:
            raise ValueError("limit and period must be positive")
        self._interval = period / limit
        self._tolerance = max(0.0, period - self._interval)
        self._max_keys = max_keys
        self._due: OrderedDict[str, float] = OrderedDict()

    def wait(self, key: str) -> float:
        """How long until an event of ``key`` would be admitted (0: now); counts nothing."""
        now = trio.current_time()
        return max(0.0, self._due.get(key, now) - self._tolerance - now)

    def acquire(self, key: str) -> float:
        """Count one event and return 0, or return how long until one would be admitted."""
        now = trio.current_time()
        due = max(self._due.get(key, now), now)
        wait = due - self._tolerance - now
        if wait > 0:
            return wait
        self._due[key] = due + self._interval
        self._due.move_to_end(key)
        while len(self._due) > self._max_keys:
            self._due.popitem(last=False)
        return 0.0

    def forget(self, key: str) -> None:
        self._due.pop(key, None)

    def __len__(self) -> int:
        return len(self._due)


def _limiter(limit: int, period: float, instances: int) -> RateLimiter | None:
    """This instance's share of a limit; None when the limit is off (0)."""
    return RateLimiter(limit / instances, period) if limit > 0 else None


class ApiRateLimits:
    """Per-user and per-address limits for task creation and for reads (``/api/video``)."""

    def __init__(self, settings: Settings) -> None:
        period, instances = settings.rate_limit_period_seconds, settings.rate_limit_instances
        self._limits: dict[tuple[str, str], RateLimiter | None] = {
            ("create", "user"): _limiter(settings.rate_limit_create_per_user, period, instances),
            ("create", "address"): _limiter(
                settings.rate_limit_create_per_address, period, instances
            ),
            ("read", "user"): _limiter(settings.rate_limit_read_per_user, period, instances),
            ("read", "address"): _limiter(settings.rate_limit_read_per_address, period, instances),
        }

    def check(self, kind: str, address: str, user_id: str | None) -> None:
        """Count the request against its address and user; 429 ``RATE_LIMITED`` beyond.

        A request refused by one limit is not counted by the other.
        """
        applicable = [
            (scope, key, limiter)
            for scope, key in (("address", address), ("user", user_id))
            if key is not None and (limiter := self._limits[(kind, scope)]) is not None
        ]
        wait, scope = max(
            ((limiter.wait(key), scope) for scope, key, limiter in applicable), default=(0.0, "")
        )
        if wait > 0:
            message = f"Too many requests from this {scope}"
            raise too_many("RATE_LIMITED", message, wait, scope=scope, kind=kind)
        for _, key, limiter in applicable:
            limiter.acquire(key)


def request_kind(method: str, path: str) -> str | None:
    """``create``, ``read`` or None (not rate limited here) for a request."""
    if not path.startswith(_API_PREFIX) or method == "OPTIONS":
        return None
    if method == "POST" and path.endswith(_CREATE_SUFFIXES):
        return "create"
    return "read"


def install(app: Quart, limits: ApiRateLimits) -> None:
    """Check the API limits before each ``/api/video`` request (after the body limit)."""

    @app.before_request
    async def _rate_limit() -> None:
        kind = request_kind(request.method, request.path)
        if kind is None:
            return
        user_id: str | None = None
        # Without a valid token the route answers 401; the address limit still counts it.
        header = request.headers.get("Authorization")
        with contextlib.suppress(ApiError):
            user_id = keyauth.holder_of(header) or ctx().tokens.verify_header(header).user_id
        limits.check(kind, client_address(), user_id)
