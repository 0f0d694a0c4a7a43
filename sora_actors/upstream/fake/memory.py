"""An in-process Provider over the simulator's engine: same rules and faults, no HTTP.

For unit tests (under `trio.testing.MockClock`) and 10k-actor benchmarks. It
uses the same Limiter as the HTTP provider, and adds hooks: inject errors for
the next N calls of a method, force a job to complete, fail or expire.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import trio

from ..config import RetryPolicy
from ..limiter import LimitedProvider, Limiter
from ..mapping import (
    DEFAULT_MODEL_MAP,
    OPENAI_SECONDS,
    classify_error,
    map_model,
    map_seconds,
    may_have_created,
    normalize_status,
)
from ..provider import (
    ContentVariant,
    ErrorKind,
    JobPage,
    OnSend,
    SubmitRequest,
    UpstreamError,
    UpstreamJob,
    find_in_list,
)
from .engine import Engine, EngineError, JobState, SimulatorConfig
from .media import media_bytes

T = TypeVar("T")
Method = Literal["submit", "get", "fetch_content", "remix", "list_jobs", "cancel"]
_METHODS: frozenset[str] = frozenset(
    {"submit", "get", "fetch_content", "remix", "list_jobs", "cancel"}
)
NO_RETRY = RetryPolicy(max_attempts=1, create_attempts=1)


@dataclass(slots=True)
class _Injection:
    error: UpstreamError
    remaining: int
    after: bool  # raise after the operation took effect (e.g. a create whose answer was lost)


def engine_error_to_upstream(e: EngineError) -> UpstreamError:
    """Classify an engine refusal as the HTTP provider classifies the simulator's answer."""
    return classify_error(e.status, e.message, e.code, e.type, retry_after_s=e.retry_after_s)


def job_state_to_upstream(
    engine: Engine, st: JobState, *, poll_after_s: float | None = None
) -> UpstreamJob:
    j = st.job
    code = j.fail_code if st.status == "failed" else None
    return UpstreamJob(
        id=j.id,
        status=normalize_status(st.status),
        progress=st.progress,
        model=j.model,
        size=j.size,
        seconds=j.seconds,
        created_at=float(int(j.created)),
        completed_at=None if st.completed_at is None else float(int(st.completed_at)),
        expires_at=None if st.expires_at is None else float(int(st.expires_at)),
        remixed_from=j.remixed_from,
        error_code=code,
        error_message=engine.fail_message(code) if code else None,
        poll_after_s=poll_after_s,
        prompt=j.prompt,
    )


class MemoryProvider(LimitedProvider):
    """`Provider` backed directly by an `Engine`. Errors surface at once unless `retry` asks."""

    def __init__(
        self,
        config: SimulatorConfig | None = None,
        *,
        engine: Engine | None = None,
        api_key: str = "memory",
        max_requests_per_second: float | None = None,
        max_concurrent_jobs: int | None = None,
        limiter: Limiter | None = None,
        retry: RetryPolicy = NO_RETRY,
        model_map: Mapping[str, str] = DEFAULT_MODEL_MAP,
        allowed_seconds: tuple[int, ...] = OPENAI_SECONDS,
        read_timeout_s: float = 30.0,
        chunk_size: int = 4096,
        rng: random.Random | None = None,
    ) -> None:
        self.engine = engine or Engine(config or SimulatorConfig())
        self.api_key = api_key
        self.limiter = limiter or Limiter(max_requests_per_second, max_concurrent_jobs)
        self.retry = retry
        self.model_map = model_map
        self.allowed_seconds = allowed_seconds
        self.read_timeout_s = read_timeout_s
        self.chunk_size = chunk_size
        self._rng = rng or random.Random(0)
        self._injections: dict[str, deque[_Injection]] = {}
        self.calls: dict[str, int] = dict.fromkeys(_METHODS, 0)

    # -- test hooks -----------------------------------------------------------
    def inject_error(
        self, method: Method, error: UpstreamError, count: int = 1, *, after: bool = False
    ) -> None:
        """Make the next `count` calls of `method` raise `error` (after the effect, if `after`)."""
        if method not in _METHODS:
            raise ValueError(f"unknown method {method!r}")
        self._injections.setdefault(method, deque()).append(_Injection(error, count, after))

    def force_complete(self, job_id: str) -> None:
        self.engine.force(job_id, "complete")

    def force_fail(self, job_id: str, code: str = "moderation_blocked") -> None:
        self.engine.force(job_id, "fail", code)

    def force_expire(self, job_id: str) -> None:
        self.engine.force(job_id, "expire")

    @property
    def creates(self) -> int:
        """Creates (and remixes) that reached the engine for this key."""
        return self.engine.creates_by_key[self.api_key]

    def polls(self, job_id: str) -> int:
        return self.engine.polls_by_job[job_id]

    def stats(self) -> dict[str, Any]:
        return self.engine.stats()

    # -- plumbing -------------------------------------------------------------
    def _injection(self, method: str, after: bool) -> UpstreamError | None:
        q = self._injections.get(method)
        if not q or q[0].after is not after:
            return None
        inj = q[0]
        inj.remaining -= 1
        if inj.remaining <= 0:
            q.popleft()
        return inj.error

    async def _once(
        self,
        method: str,
        op: str,
        job_id: str,
        fn: Callable[[], T],
        *,
        create: bool,
        on_send: OnSend | None,
    ) -> T:
        """One simulated request: pacing, injected errors, admission, effect, response faults."""
        self.calls[method] += 1
        await self.limiter.wait_turn()
        if on_send is not None:
            await on_send()
        err = self._injection(method, after=False)
        if err is not None:
            raise err
        eng = self.engine
        try:
            eng.admit(self.api_key, op, job_id)
            result = fn()
        except EngineError as e:
            ue = engine_error_to_upstream(e)
            if e.status == 429:
                self.limiter.defer(e.retry_after_s if e.retry_after_s is not None else 1.0)
            raise ue from None
        err = self._injection(method, after=True)
        if err is not None:
            raise err
        fault = eng.roll_response_fault(op)
        if fault == "slow":
            slow = eng.faults.slow_s
            await trio.sleep(min(slow, self.read_timeout_s))
            if slow < self.read_timeout_s:
                return result
        if fault is not None:
            if create:
                raise UpstreamError(ErrorKind.AMBIGUOUS_CREATE, f"create outcome unknown ({fault})")
            kind = {
                "slow": ErrorKind.TIMEOUT,
                "drop": ErrorKind.TRANSIENT,
                "malformed": ErrorKind.MALFORMED,
            }[fault]
            raise UpstreamError(kind, f"simulated {fault} response")
        return result

    async def _call(
        self,
        method: str,
        op: str,
        job_id: str,
        fn: Callable[[], T],
        *,
        create: bool = False,
        on_send: OnSend | None = None,
    ) -> T:
        attempts = self.retry.create_attempts if create else self.retry.max_attempts
        attempt = 0
        while True:
            attempt += 1
            try:
                return await self._once(method, op, job_id, fn, create=create, on_send=on_send)
            except UpstreamError as e:
                if not e.retryable or attempt >= attempts:
                    raise
                if e.kind is not ErrorKind.RATE_LIMITED:
                    await trio.sleep(self.retry.backoff(attempt, self._rng.random()))

    async def _with_slot(self, make: Callable[[], Awaitable[UpstreamJob]]) -> UpstreamJob:
        async with self.limiter.job_slot() as slot:
            job = await make()
            if not job.status.terminal:
                slot.commit(job.id)
            return job

    # -- Provider -------------------------------------------------------------
    async def submit(self, request: SubmitRequest, *, on_send: OnSend | None = None) -> UpstreamJob:
        eng = self.engine
        model = map_model(request.model, self.model_map)
        seconds = map_seconds(request.seconds, self.allowed_seconds)

        def create() -> UpstreamJob:
            job = eng.create(self.api_key, request.prompt, model, request.size, seconds)
            return job_state_to_upstream(eng, eng.state(job))

        return await self._with_slot(
            lambda: self._call("submit", "create", "", create, create=True, on_send=on_send)
        )

    async def remix(
        self, job_id: str, prompt: str, *, on_send: OnSend | None = None
    ) -> UpstreamJob:
        eng = self.engine

        def remix() -> UpstreamJob:
            return job_state_to_upstream(eng, eng.state(eng.remix(self.api_key, job_id, prompt)))

        return await self._with_slot(
            lambda: self._call("remix", "remix", job_id, remix, create=True, on_send=on_send)
        )

    async def get(self, job_id: str) -> UpstreamJob:
        eng = self.engine

        def retrieve() -> UpstreamJob:
            st = eng.retrieve(self.api_key, job_id)
            return job_state_to_upstream(eng, st, poll_after_s=eng.poll_after_ms(st) / 1000.0)

        try:
            job = await self._call("get", "retrieve", job_id, retrieve)
        except UpstreamError as e:
            if e.kind is ErrorKind.NOT_FOUND:
                self.limiter.release(job_id)
            raise
        self.limiter.job_seen(job.id, job.status.terminal)
        return job

    async def cancel(self, job_id: str) -> bool:
        """The engine can stop a job (the Replicate dialect's cancel)."""
        eng = self.engine
        job = await self._call(
            "cancel",
            "cancel",
            job_id,
            lambda: job_state_to_upstream(eng, eng.cancel(self.api_key, job_id)),
        )
        self.limiter.job_seen(job.id, job.status.terminal)
        return True

    async def list_jobs(self, after: str | None = None, limit: int = 100) -> JobPage:
        eng = self.engine

        def page() -> JobPage:
            states, more = eng.list(self.api_key, after, limit, "desc")
            jobs = tuple(job_state_to_upstream(eng, s) for s in states)
            return JobPage(jobs, more, jobs[0].id if jobs else None, jobs[-1].id if jobs else None)

        return await self._call("list_jobs", "list", "", page)

    async def find_jobs(self, request: SubmitRequest, *, pages: int = 3) -> list[UpstreamJob]:
        return await find_in_list(
            self.list_jobs,
            lambda job: may_have_created(job, request, self.model_map, self.allowed_seconds),
            pages,
        )

    async def fetch_content(
        self, job_id: str, variant: ContentVariant = "video"
    ) -> AsyncGenerator[bytes, None]:
        eng = self.engine

        def check() -> bytes:
            eng.content_check(self.api_key, job_id)
            return media_bytes(variant)

        data = await self._call("fetch_content", "content", job_id, check)
        for i in range(0, len(data), self.chunk_size):
            yield data[i : i + self.chunk_size]
            await trio.lowlevel.checkpoint()
