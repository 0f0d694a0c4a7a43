"""Control events: "something that processes cache has changed", from any instance.

Accounts and sessions (`access.py`) today, run-time config tomorrow: a process may keep a
copy of such rows only if it hears of every change to them. On PostgreSQL the unit of work
that changes one sends ``NOTIFY sora_control_events, '<kind> <id>'`` (storage/notify.py)
and this listener hands ``id`` to the handlers of ``kind``. A lost listening connection
loses notifications without a trace, so from the moment it is lost until it is back the
channel is not `live` (caches must not answer from memory) and, when it is back, every
reset handler runs (caches start again from empty).

On SQLite one process owns the file, so its own writes invalidate directly; the only other
writer is the command line (``sora-actors users ...``) in another process. SQLite's
``PRAGMA data_version`` changes exactly when another connection has committed, so it is
polled every ``poll_s`` and a change runs the reset handlers: such changes are seen within
``poll_s``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import NoReturn

import trio

from .storage import Storage, StorageError
from .storage.notify import CONTROL_CHANNEL, Notifications, parse_change

log = logging.getLogger("sora_actors.control")

Handler = Callable[[str], None]
Reset = Callable[[], None]


class ControlEvents:
    """Dispatches control notifications by kind; says when they may have been missed."""

    def __init__(self, storage: Storage, *, poll_s: float = 1.0) -> None:
        self._storage = storage
        self._poll_s = poll_s
        self._handlers: dict[str, list[Handler]] = {}
        self._resets: list[Reset] = []
        # PostgreSQL: live only while the listener is connected; SQLite: always.
        self._live = storage.dialect == "sqlite"

    @property
    def live(self) -> bool:
        """Whether every change made elsewhere is being heard right now."""
        return self._live

    def subscribe(self, kind: str, handler: Handler) -> None:
        """Call ``handler(id)`` for each ``<kind> <id>`` notification."""
        self._handlers.setdefault(kind, []).append(handler)

    def on_reset(self, handler: Reset) -> None:
        """Call ``handler()`` whenever changes may have been missed: drop everything cached."""
        self._resets.append(handler)

    def dispatch(self, payload: str) -> None:
        parsed = parse_change(payload)
        if parsed is None:
            log.warning("ignoring a malformed control notification %r", payload[:100])
            return
        kind, ident = parsed
        for handler in self._handlers.get(kind, ()):
            handler(ident)

    def _reset(self) -> None:
        for handler in self._resets:
            handler()

    def _connected(self) -> None:
        self._live = True
        self._reset()

    def _lost(self) -> None:
        self._live = False
        self._reset()

    async def run(self) -> NoReturn:
        """Listen (PostgreSQL) or poll for outside writes (SQLite) until cancelled."""
        if self._storage.dialect == "postgresql":
            await Notifications(self._storage.database).listen(
                self.dispatch, self._connected, channel=CONTROL_CHANNEL, on_lost=self._lost
            )
        seen: int | None = None
        while True:
            try:
                version = await self._storage.accounts.outside_writes()
            except StorageError:
                log.warning("could not poll for outside writes", exc_info=True)
            else:
                if seen is not None and version != seen:
                    self._reset()
                seen = version
            await trio.sleep(self._poll_s)
