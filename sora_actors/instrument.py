"""Counting what the actors ask of the upstream, for ``/metrics``.

The runtime wraps its provider in `CountingProvider`; the counters are plain integers
(this room knows nothing of Prometheus) that the http layer reads at scrape time, as one
snapshot (`CountingProvider.statistics`). Only actors poll (``get``), so ``calls["get"]``
is the number of upstream polls.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncGenerator, Awaitable, Mapping
from contextlib import aclosing
from dataclasses import dataclass
from types import MappingProxyType, TracebackType
from typing import Self, TypeVar

from .upstream import (
    ContentVariant,
    JobPage,
    OnSend,
    Provider,
    SubmitRequest,
    UpstreamError,
    UpstreamJob,
)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class UpstreamStatistics:
    """Calls by operation and failures by `ErrorKind` value, since the process started
    (operations and kinds never seen are absent)."""

    calls: Mapping[str, int]
    errors: Mapping[str, int]

    @property
    def polls(self) -> int:
        return self.calls.get("get", 0)


class CountingProvider:
    """A `Provider` that counts calls and upstream errors, then defers to the real one."""

    def __init__(
        self,
        inner: Provider,
        *,
        calls: Counter[str] | None = None,
        errors: Counter[str] | None = None,
    ) -> None:
        """Pass ``calls`` and ``errors`` to share one tally among several providers (the
        channels of one process)."""
        self.inner = inner
        self._calls: Counter[str] = Counter() if calls is None else calls
        self._errors: Counter[str] = Counter() if errors is None else errors

    def statistics(self) -> UpstreamStatistics:
        return UpstreamStatistics(
            MappingProxyType(dict(self._calls)), MappingProxyType(dict(self._errors))
        )

    async def _counted(self, operation: str, call: Awaitable[T]) -> T:
        """Count the call, and its failure if it raises an `UpstreamError`."""
        self._calls[operation] += 1
        try:
            return await call
        except UpstreamError as error:
            self._errors[error.kind.value] += 1
            raise

    async def submit(self, request: SubmitRequest, *, on_send: OnSend | None = None) -> UpstreamJob:
        return await self._counted("submit", self.inner.submit(request, on_send=on_send))

    async def get(self, job_id: str) -> UpstreamJob:
        return await self._counted("get", self.inner.get(job_id))

    async def fetch_content(
        self, job_id: str, variant: ContentVariant = "video"
    ) -> AsyncGenerator[bytes, None]:
        self._calls["fetch_content"] += 1
        async with aclosing(self.inner.fetch_content(job_id, variant)) as chunks:
            try:
                async for chunk in chunks:
                    yield chunk
            except UpstreamError as error:
                self._errors[error.kind.value] += 1
                raise

    async def remix(
        self, job_id: str, prompt: str, *, on_send: OnSend | None = None
    ) -> UpstreamJob:
        return await self._counted("remix", self.inner.remix(job_id, prompt, on_send=on_send))

    async def list_jobs(self, after: str | None = None, limit: int = 100) -> JobPage:
        return await self._counted("list_jobs", self.inner.list_jobs(after, limit))

    async def find_jobs(self, request: SubmitRequest, *, pages: int = 3) -> list[UpstreamJob]:
        return await self._counted("find_jobs", self.inner.find_jobs(request, pages=pages))

    async def cancel(self, job_id: str) -> bool:
        return await self._counted("cancel", self.inner.cancel(job_id))

    def forget(self, job_id: str) -> None:
        self.inner.forget(job_id)

    async def aclose(self) -> None:
        await self.inner.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """The inner provider's lifetime belongs to whoever opened it."""
