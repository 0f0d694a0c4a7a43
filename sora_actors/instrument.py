"""Counting what the actors ask of the upstream, for ``/metrics``.

The runtime wraps its provider in `CountingProvider`; the counters are plain integers
(this room knows nothing of Prometheus) that the http layer reads at scrape time. Only
actors poll (``get``), so ``calls["get"]`` is the number of upstream polls.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

from .upstream import ContentVariant, JobPage, Provider, SubmitRequest, UpstreamError, UpstreamJob


@dataclass
class UpstreamStats:
    """Calls by operation and failures by `ErrorKind` value, since the process started."""

    calls: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)

    @property
    def polls(self) -> int:
        return self.calls["get"]


class CountingProvider:
    """A `Provider` that counts calls and upstream errors, then defers to the real one."""

    def __init__(self, inner: Provider, stats: UpstreamStats | None = None) -> None:
        self.inner = inner
        self.stats = stats or UpstreamStats()

    def _failed(self, error: UpstreamError) -> None:
        self.stats.errors[error.kind.value] += 1

    async def submit(self, request: SubmitRequest) -> UpstreamJob:
        self.stats.calls["submit"] += 1
        try:
            return await self.inner.submit(request)
        except UpstreamError as error:
            self._failed(error)
            raise

    async def get(self, job_id: str) -> UpstreamJob:
        self.stats.calls["get"] += 1
        try:
            return await self.inner.get(job_id)
        except UpstreamError as error:
            self._failed(error)
            raise

    async def fetch_content(
        self, job_id: str, variant: ContentVariant = "video"
    ) -> AsyncGenerator[bytes, None]:
        self.stats.calls["fetch_content"] += 1
        async with aclosing(self.inner.fetch_content(job_id, variant)) as chunks:
            try:
                async for chunk in chunks:
                    yield chunk
            except UpstreamError as error:
                self._failed(error)
                raise

    async def remix(self, job_id: str, prompt: str) -> UpstreamJob:
        self.stats.calls["remix"] += 1
        try:
            return await self.inner.remix(job_id, prompt)
        except UpstreamError as error:
            self._failed(error)
            raise

    async def delete(self, job_id: str) -> None:
        self.stats.calls["delete"] += 1
        try:
            await self.inner.delete(job_id)
        except UpstreamError as error:
            self._failed(error)
            raise

    async def list_jobs(self, after: str | None = None, limit: int = 100) -> JobPage:
        self.stats.calls["list_jobs"] += 1
        try:
            return await self.inner.list_jobs(after, limit)
        except UpstreamError as error:
            self._failed(error)
            raise

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
