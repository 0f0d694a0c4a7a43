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

import trio

from .storage import Storage
from .storage.tasks import record_polls


class PollLedger:
    def __init__(self, storage: Storage) -> None:
        self._storage = storage
        self._pending: dict[str, tuple[int, int]] = {}
        self._wakeup = trio.Event()
        self.writes = 0  # units of work issued, for benchmarks and tests

    def note(self, video_id: str, at_ms: int) -> None:
        count, _ = self._pending.get(video_id, (0, 0))
        self._pending[video_id] = (count + 1, at_ms)
        self._wakeup.set()

    async def run(self) -> None:
        """Write noted polls until cancelled; on cancellation, write what is left."""
        try:
            while True:
                await self._wakeup.wait()
                self._wakeup = trio.Event()
                await self.flush()
        finally:
            with trio.CancelScope(shield=True):
                await self.flush()

    async def flush(self) -> None:
        if not self._pending:
            return
        batch, self._pending = self._pending, {}
        self.writes += 1
        await record_polls(self._storage.database, batch)
