"""The one place where Trio calls into asyncio.

`databases`, asyncpg and aiosqlite need a running asyncio loop. trio-asyncio gives us one
inside Trio; a transaction only survives when the whole unit of work runs in ONE asyncio
coroutine (split across several bridge calls it deadlocks on PostgreSQL and corrupts on
SQLite). So the bridge takes a whole coroutine function and runs it to the end.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, ParamSpec, TypeVar

import trio_asyncio

P = ParamSpec("P")
T = TypeVar("T")


class AsyncioBridge:
    """Runs asyncio coroutine functions on a loop that a long-lived Trio task owns."""

    def __init__(self, loop: Any) -> None:
        self._loop = loop

    async def run(self, fn: Callable[P, Awaitable[T]], *args: P.args, **kwargs: P.kwargs) -> T:
        # `loop=` is required: request handlers run in Hypercorn's tasks, which do not
        # inherit trio-asyncio's "current loop" context variable.
        result: T = await trio_asyncio.aio_as_trio(fn, loop=self._loop)(*args, **kwargs)
        return result


def sole_exception(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The one leaf of a group that wraps exactly one exception, else the group itself."""
    current: BaseException = group
    while isinstance(current, BaseExceptionGroup) and len(current.exceptions) == 1:
        current = current.exceptions[0]
    return current


@asynccontextmanager
async def open_bridge() -> AsyncIterator[AsyncioBridge]:
    """Own an asyncio loop for as long as the block runs.

    trio-asyncio's internal nurseries wrap whatever the block raises in exception groups;
    a single error is unwrapped so callers can catch, say, SchemaTooNew directly.
    """
    try:
        async with trio_asyncio.open_loop() as loop:
            yield AsyncioBridge(loop)
    except BaseExceptionGroup as group:
        leaf = sole_exception(group)
        if leaf is group:
            raise
        raise leaf from None
