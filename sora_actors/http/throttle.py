"""Throttling of repeated failed logins from one client."""

from __future__ import annotations

import math
from collections import OrderedDict, deque

import trio

from .envelope import ApiError


class LoginThrottle:
    """At most ``max_failures`` failed logins per client within ``window`` seconds.

    Memory is bounded: at most ``max_clients`` clients are remembered (least recently
    failing forgotten first). Times come from Trio's clock, so tests run it in virtual time.
    """

    def __init__(self, max_failures: int, window: float, max_clients: int = 100_000) -> None:
        self._max = max_failures
        self._window = window
        self._max_clients = max_clients
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def _recent(self, client: str, now: float) -> deque[float] | None:
        times = self._failures.get(client)
        if times is None:
            return None
        while times and times[0] <= now - self._window:
            times.popleft()
        if not times:
            del self._failures[client]
            return None
        return times

    def check(self, client: str) -> None:
        """Raise 429 (with Retry-After) while the client is over its budget."""
        now = trio.current_time()
        times = self._recent(client, now)
        if times is not None and len(times) >= self._max:
            wait = max(1, math.ceil(times[0] + self._window - now))
            raise ApiError(
                429,
                "TOO_MANY_LOGIN_ATTEMPTS",
                f"Too many failed logins; try again in {wait} s.",
                headers={"Retry-After": str(wait)},
            )

    def failed(self, client: str) -> None:
        now = trio.current_time()
        times = self._recent(client, now) or deque()
        times.append(now)
        self._failures[client] = times
        self._failures.move_to_end(client)
        while len(self._failures) > self._max_clients:
            self._failures.popitem(last=False)

    def succeeded(self, client: str) -> None:
        self._failures.pop(client, None)
