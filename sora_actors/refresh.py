"""Keeping a process's copy of some stored rows current, on every instance within a second.

Shared by the run-time config (`system_config`) and the admins' channels
(`channel_registry`): on PostgreSQL the writer NOTIFYs on the rows' own channel inside its
unit of work, and every instance re-reads on the notification, after each reconnection of
the listener, and every ``fallback_s`` in case one was lost; on SQLite (one file, one
process) it re-reads every ``refresh_s``, which picks up a change made by the CLI or by hand.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import NoReturn

import trio

from .storage import Storage
from .storage.notify import Notifications

log = logging.getLogger("sora_actors.refresh")


async def keep_current(
    storage: Storage,
    reload: Callable[[], Awaitable[object]],
    *,
    channel: str,
    what: str,
    refresh_s: float = 1.0,
    fallback_s: float = 30.0,
) -> NoReturn:
    """Call ``reload`` at each wake-up (see the module doc) until cancelled; an outage is
    logged (``what`` names the rows) and the next round tries again."""
    notifications = Notifications(storage.database)
    wake = trio.Event()

    def poke(_payload: str | None = None) -> None:
        wake.set()

    async with trio.open_nursery() as nursery:
        interval = refresh_s
        if notifications.supported:
            interval = fallback_s
            nursery.start_soon(lambda: notifications.listen(poke, poke, channel=channel))
        while True:
            with trio.move_on_after(interval):
                await wake.wait()
            wake = trio.Event()
            try:
                await reload()
            except Exception as error:
                log.warning("could not re-read the %s: %s", what, error)
