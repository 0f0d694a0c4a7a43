"""Cross-instance wake-ups through PostgreSQL LISTEN/NOTIFY.

Every unit of work that bumps a task's ``seq`` also sends ``NOTIFY sora_task_events,
'<videoId> <seq> <userId>'`` (delivered on commit, to every listening instance). The
payload is tiny and delivery is at most once, so listeners treat it as a hint: they re-read
the task and compare sequence numbers, and a periodic catch-up repairs anything missed.

A second channel, ``sora_control_events``, carries changes to what the service keeps cached
per process (accounts and sessions today; run-time config may join): ``'<kind> <id>'``,
e.g. ``user <userId>`` or ``session <sessionId>``. Its listeners drop what they cached
and, since a lost notification cannot be detected, drop everything when the listening
connection is lost.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, NoReturn

import asyncpg
import trio

from .database import Database

CHANNEL = "sora_task_events"
CONTROL_CHANNEL = "sora_control_events"
log = logging.getLogger("sora_actors.storage")


async def announce(conn: Any, video_id: str, seq: int, user_id: str) -> None:
    """Inside a unit of work (PostgreSQL only): tell the other instances."""
    await conn.execute(
        "SELECT pg_notify(:channel, :payload)",
        {"channel": CHANNEL, "payload": f"{video_id} {seq} {user_id}"},
    )


async def signal_change(conn: Any, kind: str, ident: str) -> None:
    """Inside a unit of work (PostgreSQL only): ``<kind> <id>`` changed, drop cached copies."""
    await conn.execute(
        "SELECT pg_notify(:channel, :payload)",
        {"channel": CONTROL_CHANNEL, "payload": f"{kind} {ident}"},
    )


def parse_change(payload: str) -> tuple[str, str] | None:
    """``(kind, id)`` of a control notification, or None when malformed."""
    kind, _, ident = payload.partition(" ")
    return (kind, ident) if kind and ident and " " not in ident else None


def parse(payload: str) -> tuple[str, int, str] | None:
    parts = payload.split(" ")
    if len(parts) != 3 or not parts[1].isdigit():
        return None
    return parts[0], int(parts[1]), parts[2]


async def _listen_once(
    dsn: str,
    on_payload: Callable[[str], None],
    on_connected: Callable[[], None],
    channel: str = CHANNEL,
) -> None:
    """Asyncio side: hold one connection that LISTENs until it is lost or cancelled."""
    conn: Any = await asyncpg.connect(dsn, timeout=10)
    lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def on_lost(_: Any) -> None:
        if not lost.done():
            lost.set_result(None)

    try:
        conn.add_termination_listener(on_lost)
        await conn.add_listener(channel, lambda _c, _pid, _ch, payload: on_payload(payload))
        on_connected()
        await lost
    finally:
        if not conn.is_closed():
            conn.terminate()


class Notifications:
    """Receives every instance's task notifications, reconnecting after outages."""

    def __init__(self, database: Database) -> None:
        self._db = database

    @property
    def supported(self) -> bool:
        return self._db.dialect == "postgresql"

    async def listen(
        self,
        on_payload: Callable[[str], None],
        on_connected: Callable[[], None] = lambda: None,
        *,
        retry_s: float = 1.0,
        channel: str = CHANNEL,
        on_lost: Callable[[], None] = lambda: None,
    ) -> NoReturn:
        """Call ``on_payload`` for each notification on ``channel`` until cancelled.

        ``on_connected`` runs after every (re)connection: what was sent while the listener
        was away is lost, so the caller catches up then. ``on_lost`` runs as soon as the
        connection is found lost (or could not be made), before the retry.
        """
        dsn = self._db.url.replace("postgresql+asyncpg://", "postgresql://", 1)
        while True:
            try:
                await self._db.bridge.run(_listen_once, dsn, on_payload, on_connected, channel)
                log.warning("notification listener lost its connection; reconnecting")
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
                log.warning("notification listener: %s; retrying in %.0f s", error, retry_s)
            on_lost()
            await trio.sleep(retry_s)
