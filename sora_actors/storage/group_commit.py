"""Group commit: units of work that arrive while a commit is in flight share the next one.

SQLite commits about a thousand transactions a second through one connection; task
transitions from thousands of actors need more. Each caller hands its unit to the
committer and waits for ITS outcome: the committer takes everything that queued up, runs it
as ONE transaction with a savepoint per unit, commits, and only then answers each caller.
So a caller (the task service) still publishes nothing before its change is durable.

A unit that fails (a stale ``seq``, a broken rule) rolls back to its savepoint and fails
alone; the others commit. When the transaction itself fails (the COMMIT on a full disk, a
lost connection), the units are run again one by one, so that only those that fail on
their own fail.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Protocol

import outcome
import trio

from .errors import StorageUnavailable
from .sqlite_engine import Call


class BatchEngine(Protocol):
    async def unit(self, fn: Any, *args: Any, **kwargs: Any) -> Any: ...

    @property
    def batch(self) -> Callable[[list[Call]], Awaitable[list[outcome.Outcome[Any]]]] | None: ...


class _Pending:
    __slots__ = ("call", "done", "result")

    def __init__(self, call: Call) -> None:
        self.call = call
        self.done = trio.Event()
        self.result: outcome.Outcome[Any] | None = None


class GroupCommitter:
    """Runs queued units in shared transactions, in arrival order."""

    def __init__(self, engine: BatchEngine, max_batch: int = 500) -> None:
        self._engine = engine
        self._max_batch = max_batch
        self._send, self._receive = trio.open_memory_channel[_Pending](math.inf)
        # What the benchmarks and tests look at: transactions and units committed through it.
        self.batches = 0
        self.units = 0

    async def submit(
        self, fn: Callable[..., Coroutine[Any, Any, Any]], *args: Any, **kwargs: Any
    ) -> Any:
        """Queue ``fn(conn, *args, **kwargs)`` and wait for its own outcome."""
        pending = _Pending((fn, args, kwargs))
        try:
            self._send.send_nowait(pending)
        except trio.ClosedResourceError:
            raise StorageUnavailable("the database is closing") from None
        await pending.done.wait()
        assert pending.result is not None
        return pending.result.unwrap()

    def close(self) -> None:
        """No more units; `run` finishes what is queued, then returns."""
        self._send.close()

    async def run(self) -> None:
        try:
            await self._serve()
        finally:
            # Cancelled (the process going down): nobody may wait forever for an answer.
            while True:
                try:
                    pending = self._receive.receive_nowait()
                except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                    break
                pending.result = outcome.Error(StorageUnavailable("the database is closing"))
                pending.done.set()

    async def _serve(self) -> None:
        async for first in self._receive:
            batch = [first]
            while len(batch) < self._max_batch:
                try:
                    batch.append(self._receive.receive_nowait())
                except (trio.WouldBlock, trio.EndOfChannel):
                    break
            # Shielded: a batch, once started, runs to its commit and answers everyone.
            with trio.CancelScope(shield=True):
                await self._commit(batch)

    async def _commit(self, batch: list[_Pending]) -> None:
        self.batches += 1
        self.units += len(batch)
        results: list[outcome.Outcome[Any]]
        if len(batch) == 1:
            fn, args, kwargs = batch[0].call
            results = [await outcome.acapture(self._engine.unit, fn, *args, **kwargs)]
        else:
            assert self._engine.batch is not None
            try:
                results = await self._engine.batch([pending.call for pending in batch])
            except Exception:
                # The shared transaction failed as a whole: each unit on its own.
                results = []
                for pending in batch:
                    fn, args, kwargs = pending.call
                    results.append(await outcome.acapture(self._engine.unit, fn, *args, **kwargs))
        for pending, result in zip(batch, results, strict=True):
            pending.result = result
            pending.done.set()
