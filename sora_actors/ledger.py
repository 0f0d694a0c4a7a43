"""The poll ledger: poll counts written in groups, not one transaction per poll.

Most polls change nothing a client can see; they only bump ``pollCount`` and
``lastPollTime``. With ten thousand actors that is a thousand tiny transactions a second,
which is what a SQLite file tops out at. Actors note such polls here; one task writes
everything noted so far in a single unit of work, then whatever was noted meanwhile, and
so on (group commit). Under light load that is one write per poll, as before; under heavy
load one write carries hundreds. No timer is involved, so virtual-time tests are not
disturbed. What is noted but not yet written when the process dies is lost: counters only.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import NoReturn

import trio

from .storage import Storage
from .storage.tasks import record_polls

log = logging.getLogger("sora_actors.ledger")


@dataclass(frozen=True, slots=True)
class LedgerStatistics:
    pending: int  # tasks with polls noted and not yet written
    writes: int  # units of work issued since the start (each may carry many tasks)


class PollLedger:
    RETRY_S = 5.0

    def __init__(self, storage: Storage) -> None:
        self._storage = storage
        self._pending: dict[str, tuple[int, int]] = {}
        self._wakeup = trio.Event()
        self._writes = 0

    def statistics(self) -> LedgerStatistics:
        return LedgerStatistics(pending=len(self._pending), writes=self._writes)

    def note(self, video_id: str, at_ms: int) -> None:
        count, _ = self._pending.get(video_id, (0, 0))
        self._pending[video_id] = (count + 1, at_ms)
        self._wakeup.set()

    async def run(self) -> NoReturn:
        """Write noted polls until cancelled; on cancellation, write what is left."""
        try:
            while True:
                await self._wakeup.wait()
                self._wakeup = trio.Event()
                if not await self.flush():
                    await trio.sleep(self.RETRY_S)  # the database is away: retry later
                    self._wakeup.set()
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(self.RETRY_S):
                await self.flush()

    async def flush(self) -> bool:
        """Write what is pending; False (and the batch kept) if the database refused."""
        if not self._pending:
            return True
        batch, self._pending = self._pending, {}
        self._writes += 1
        try:
            await record_polls(self._storage.database, batch)
        except Exception:
            log.warning("could not record %d poll counts; will retry", len(batch), exc_info=True)
            for video_id, (count, at) in batch.items():
                newer, newer_at = self._pending.get(video_id, (0, 0))
                self._pending[video_id] = (count + newer, max(at, newer_at))
            return False
        return True
