"""Limits of one WebSocket client: messages per second, task subscriptions.

Why: every client message costs a parse and often a database read (``subscribe_task``
reads a snapshot); a client sending thousands a second used to have all of them
processed. A connection may send ``ws_messages_per_second`` on average with bursts of
``ws_message_burst`` (a page subscribing to all the tasks it shows), and hold at most
``ws_max_subscriptions_per_connection`` task subscriptions; a user at most
``ws_max_subscriptions_per_user`` over all of their connections on this instance. A client
past a limit gets an ``error`` message and is closed (4429, as for other clients that ask
more than the server gives).
"""

from __future__ import annotations

from ..hub import Subscriber
from ..settings import Settings
from .ratelimit import RateLimiter


class WsLimits:
    """Message budgets per connection and subscription counts per connection and user."""

    def __init__(self, settings: Settings) -> None:
        rate, burst = settings.ws_messages_per_second, settings.ws_message_burst
        # GCRA with a limit of `burst` per `burst / rate` s: bursts of `burst`, then `rate`/s.
        self._messages = RateLimiter(burst, burst / rate, max_keys=1 << 20) if rate > 0 else None
        self._per_connection = settings.ws_max_subscriptions_per_connection
        self._per_user = settings.ws_max_subscriptions_per_user
        self._by_user: dict[str, set[Subscriber]] = {}

    def message(self, sub: Subscriber) -> bool:
        """Count a client message; False when the connection is over its budget."""
        return self._messages is None or self._messages.acquire(sub.connection_id) == 0

    def authenticated(self, sub: Subscriber) -> None:
        if sub.user_id is not None:
            self._by_user.setdefault(sub.user_id, set()).add(sub)

    def gone(self, sub: Subscriber) -> None:
        """Forget the connection (idempotent)."""
        if self._messages is not None:
            self._messages.forget(sub.connection_id)
        if sub.user_id is not None:
            members = self._by_user.get(sub.user_id)
            if members is not None:
                members.discard(sub)
                if not members:
                    del self._by_user[sub.user_id]

    def subscription_refused(self, sub: Subscriber, video_id: str) -> str | None:
        """Why subscribing to one more task is refused, or None when it is not."""
        if video_id in sub.tasks:
            return None
        if len(sub.tasks) >= self._per_connection:
            return f"at most {self._per_connection} task subscriptions per connection"
        held = sum(len(other.tasks) for other in self._by_user.get(sub.user_id or "", ()))
        if held >= self._per_user:
            return f"at most {self._per_user} task subscriptions per user"
        return None
