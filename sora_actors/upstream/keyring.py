"""Several API keys of one upstream, used in turn: one `Provider` over one provider per key.

Creates take the keys in turn (skipping a key whose job slots are all taken while another
has room). An upstream may show a job only to the key that made it, so every later call for
a job goes to the key that created it; after a restart that is not known yet, and the keys
are asked in turn until one knows the job (then it is remembered).
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from contextlib import aclosing
from types import TracebackType
from typing import Self, TypeVar

from .limiter import Limiter
from .provider import (
    ContentVariant,
    ErrorKind,
    JobPage,
    OnSend,
    Provider,
    SubmitRequest,
    UpstreamError,
    UpstreamJob,
)

T = TypeVar("T")


class KeyRing:
    """A `Provider` that spreads creates over several keys' providers."""

    def __init__(self, providers: Sequence[Provider], limiters: Sequence[Limiter]) -> None:
        if not providers or len(providers) != len(limiters):
            raise ValueError("one limiter per provider, at least one")
        self.providers = tuple(providers)
        self.limiters = tuple(limiters)
        self._turn = itertools.cycle(range(len(providers)))
        self._owner: dict[str, int] = {}

    def _next_key(self) -> int:
        """The next key in turn, preferring one with a free job slot."""
        first = next(self._turn)
        candidate = first
        for _ in range(len(self.providers)):
            limiter = self.limiters[candidate]
            cap = limiter.max_concurrent_jobs
            if cap is None or limiter.active_jobs < cap:
                return candidate
            candidate = next(self._turn)
        return first

    async def _create(self, make: Callable[[Provider], Awaitable[UpstreamJob]]) -> UpstreamJob:
        index = self._next_key()
        job = await make(self.providers[index])
        self._owner[job.id] = index
        return job

    async def _for_job(self, job_id: str, call: Callable[[Provider], Awaitable[T]]) -> T:
        """Call the key that owns ``job_id``; unknown: each key in turn until one knows it."""
        known = self._owner.get(job_id)
        order = [known] if known is not None else range(len(self.providers))
        error: UpstreamError | None = None
        for index in order:
            try:
                result = await call(self.providers[index])
            except UpstreamError as e:
                if e.kind is not ErrorKind.NOT_FOUND:
                    raise
                error = e
                continue
            self._owner[job_id] = index
            return result
        assert error is not None
        raise error

    async def submit(self, request: SubmitRequest, *, on_send: OnSend | None = None) -> UpstreamJob:
        return await self._create(lambda p: p.submit(request, on_send=on_send))

    async def remix(
        self, job_id: str, prompt: str, *, on_send: OnSend | None = None
    ) -> UpstreamJob:
        # A remix must be made by the key that sees its source.
        return await self._for_job(job_id, lambda p: p.remix(job_id, prompt, on_send=on_send))

    async def get(self, job_id: str) -> UpstreamJob:
        return await self._for_job(job_id, lambda p: p.get(job_id))

    async def cancel(self, job_id: str) -> bool:
        return await self._for_job(job_id, lambda p: p.cancel(job_id))

    async def list_jobs(self, after: str | None = None, limit: int = 100) -> JobPage:
        """The first key's list (a page token belongs to one key)."""
        return await self.providers[0].list_jobs(after, limit)

    async def find_jobs(self, request: SubmitRequest, *, pages: int = 3) -> list[UpstreamJob]:
        found: list[UpstreamJob] = []
        for index, provider in enumerate(self.providers):
            jobs = await provider.find_jobs(request, pages=pages)
            self._owner.update((job.id, index) for job in jobs)
            found += jobs
        return found

    async def fetch_content(
        self, job_id: str, variant: ContentVariant = "video"
    ) -> AsyncGenerator[bytes, None]:
        index = self._owner.get(job_id)
        if index is None:
            await self.get(job_id)  # finds (and remembers) the key that knows it
            index = self._owner[job_id]
        async with aclosing(self.providers[index].fetch_content(job_id, variant)) as chunks:
            async for chunk in chunks:
                yield chunk

    def forget(self, job_id: str) -> None:
        index = self._owner.pop(job_id, None)
        for i, provider in enumerate(self.providers):
            if index is None or i == index:
                provider.forget(job_id)

    async def aclose(self) -> None:
        for provider in self.providers:
            await provider.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
