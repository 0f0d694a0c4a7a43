"""Channels: several upstreams behind one service, each guarded by its own circuit breaker.

A channel is one upstream (dialect, URL, keys used in turn, model map, limits) with a
priority and a weight. A new task is routed by `ChannelSet.pick`: among the enabled, healthy
channels that serve its model, size and length, the highest priority wins and weight splits
the load within it (channels with a free job slot first). The task stores its channel's name;
every later call for it (polls, lookups, download, cancel) goes to that channel only,
through `ChannelSet.get`.

Health. Consecutive failures (transport errors, timeouts, 429, 5xx, unreadable answers)
open the channel's circuit for a cool-down that doubles with each failed probe up to a cap;
after it one probe request is let through, and its success closes the circuit. A 401 or 403
disables the channel (until restart) and tells admins through ``on_disabled``. A call refused
by an open circuit raises TRANSIENT (code ``circuit_open``): nothing was sent, so a create
refused that way moves on to the next channel.
"""

from __future__ import annotations

import enum
import logging
import random
from collections import deque
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from typing import TypeVar

import trio

from .upstream import (
    ContentVariant,
    ErrorKind,
    JobPage,
    Limiter,
    OnSend,
    Provider,
    SubmitRequest,
    UpstreamError,
    UpstreamJob,
)

log = logging.getLogger("sora_actors.channels")

T = TypeVar("T")
DEFAULT_CHANNEL = "default"

# Answers that say the channel itself is unwell (as opposed to "your request is wrong").
_UNHEALTHY = frozenset(
    {
        ErrorKind.TRANSIENT,
        ErrorKind.TIMEOUT,
        ErrorKind.RATE_LIMITED,
        ErrorKind.MALFORMED,
        ErrorKind.AMBIGUOUS_CREATE,
    }
)
CIRCUIT_OPEN = "circuit_open"
CHANNEL_DISABLED = "channel_disabled"


class CircuitState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"  # the cool-down is over: one probe may go


class CircuitBreaker:
    """Opens after ``threshold`` consecutive failures for ``base_s``, doubling with each
    failed probe up to ``max_s``; a successful probe closes it. Trio time throughout."""

    def __init__(self, threshold: int = 5, base_s: float = 5.0, max_s: float = 300.0) -> None:
        if threshold < 1 or base_s <= 0 or max_s < base_s:
            raise ValueError("need threshold >= 1 and 0 < base_s <= max_s")
        self.threshold = threshold
        self.base_s = base_s
        self.max_s = max_s
        self.failures = 0  # consecutive, while closed
        self.opens = 0  # consecutive openings without a success in between
        self.open_until: float | None = None
        self.probing = False

    @property
    def state(self) -> CircuitState:
        if self.open_until is None:
            return CircuitState.CLOSED
        if trio.current_time() < self.open_until:
            return CircuitState.OPEN
        return CircuitState.HALF_OPEN

    def cooldown(self, opens: int) -> float:
        """How long the ``opens``-th consecutive opening lasts."""
        return float(min(self.max_s, self.base_s * 2 ** (opens - 1)))

    def retry_in(self) -> float:
        """Seconds until a probe may go (0 when closed or half-open)."""
        if self.open_until is None:
            return 0.0
        return max(0.0, self.open_until - trio.current_time())

    def available(self) -> bool:
        """Would a request be let through now (without taking the probe)?"""
        state = self.state
        return state is CircuitState.CLOSED or (
            state is CircuitState.HALF_OPEN and not self.probing
        )

    def acquire(self) -> bool:
        """Let a request through? In HALF_OPEN only one (the probe) until it reports."""
        state = self.state
        if state is CircuitState.CLOSED:
            return True
        if state is CircuitState.HALF_OPEN and not self.probing:
            self.probing = True
            return True
        return False

    def success(self) -> None:
        self.failures = 0
        self.opens = 0
        self.open_until = None
        self.probing = False

    def failure(self) -> None:
        if self.open_until is not None:  # a probe failed (or a call let through before)
            self._open()
            return
        self.failures += 1
        if self.failures >= self.threshold:
            self._open()

    def release(self) -> None:
        """A call ended without a verdict (cancelled): another may probe."""
        self.probing = False

    def _open(self) -> None:
        self.opens += 1
        self.failures = 0
        self.probing = False
        self.open_until = trio.current_time() + self.cooldown(self.opens)
        log.warning("circuit opened for %.1f s", self.cooldown(self.opens))


@dataclass(frozen=True, slots=True)
class ChannelStatistics:
    """What /health and /metrics show of one channel."""

    name: str
    dialect: str
    priority: int
    weight: float
    enabled: bool
    state: str  # closed / open / half_open / disabled
    disabled_reason: str | None
    jobs_running: int
    calls: int
    errors: int
    error_rate: float  # over the last `Channel.WINDOW` calls
    latency_ms: float | None  # mean of the last `Channel.WINDOW` calls
    retry_in_s: float


@dataclass(frozen=True, slots=True)
class ChannelInfo:
    """What routing needs to know of a channel, besides its health."""

    name: str
    dialect: str = "openai"
    priority: int = 0
    weight: float = 1.0
    enabled: bool = True
    models: tuple[str, ...] = ()
    sizes: tuple[str, ...] = ()
    durations: tuple[int, ...] = ()
    webhook_secret: str = ""

    def serves(self, model: str, size: str, duration: int) -> bool:
        return (
            (not self.models or model in self.models)
            and (not self.sizes or size in self.sizes)
            and (not self.durations or duration in self.durations)
        )


Disabled = Callable[["Channel", str], Awaitable[None]]


class Channel:
    """One upstream as the actors see it: a `Provider` that keeps the channel's health."""

    WINDOW = 100

    def __init__(
        self,
        info: ChannelInfo,
        provider: Provider,
        *,
        limiters: Sequence[Limiter] = (),
        breaker: CircuitBreaker | None = None,
        on_disabled: Disabled | None = None,
    ) -> None:
        self.info = info
        self.name = info.name
        self.inner = provider
        self.limiters = tuple(limiters)
        self.breaker = breaker or CircuitBreaker()
        self.disabled_reason: str | None = None
        self._on_disabled = on_disabled
        self._calls = 0
        self._errors = 0
        self._outcomes: deque[bool] = deque(maxlen=self.WINDOW)
        self._latencies: deque[float] = deque(maxlen=self.WINDOW)

    # -- state ----------------------------------------------------------------------
    @property
    def usable(self) -> bool:
        """Enabled, not disabled by a 401/403, and its circuit would let a request through."""
        return self.info.enabled and self.disabled_reason is None and self.breaker.available()

    @property
    def jobs_running(self) -> int:
        return sum(limiter.active_jobs for limiter in self.limiters)

    def has_free_slot(self) -> bool:
        """Could a create start now without waiting for a job slot?"""
        return not self.limiters or any(
            limiter.max_concurrent_jobs is None or limiter.active_jobs < limiter.max_concurrent_jobs
            for limiter in self.limiters
        )

    def statistics(self) -> ChannelStatistics:
        state = "disabled" if self.disabled_reason or not self.info.enabled else None
        return ChannelStatistics(
            name=self.name,
            dialect=self.info.dialect,
            priority=self.info.priority,
            weight=self.info.weight,
            enabled=self.info.enabled and self.disabled_reason is None,
            state=state or self.breaker.state.value,
            disabled_reason=self.disabled_reason,
            jobs_running=self.jobs_running,
            calls=self._calls,
            errors=self._errors,
            error_rate=(
                round(self._outcomes.count(False) / len(self._outcomes), 4)
                if self._outcomes
                else 0.0
            ),
            latency_ms=(
                round(1000 * sum(self._latencies) / len(self._latencies), 3)
                if self._latencies
                else None
            ),
            retry_in_s=round(self.breaker.retry_in(), 3),
        )

    async def test(self) -> UpstreamError | None:
        """An admin's test call: one list request, past the circuit and a 401's disabling.
        A success closes the circuit and enables a channel a 401/403 had disabled."""
        started = trio.current_time()
        try:
            await self.inner.list_jobs(limit=1)
        except UpstreamError as error:
            self._calls += 1
            self._latencies.append(trio.current_time() - started)
            return error
        self._calls += 1
        self._latencies.append(trio.current_time() - started)
        self.disabled_reason = None
        self.breaker.success()
        return None

    # -- the guard ------------------------------------------------------------------
    def _admit(self) -> None:
        """Refuse at once (nothing sent) when disabled or the circuit is open."""
        if self.disabled_reason is not None:
            raise UpstreamError(
                ErrorKind.AUTH,
                f"channel {self.name} is disabled: {self.disabled_reason}",
                code=CHANNEL_DISABLED,
            )
        if not self.breaker.acquire():
            raise UpstreamError(
                ErrorKind.TRANSIENT,
                f"channel {self.name}: circuit open",
                code=CIRCUIT_OPEN,
                retry_after_s=self.breaker.retry_in() or None,
            )

    async def _report(self, started: float, error: UpstreamError | None) -> None:
        self._calls += 1
        self._latencies.append(trio.current_time() - started)
        healthy = error is None or error.kind not in _UNHEALTHY | {ErrorKind.AUTH}
        if error is not None and _disables(error):
            healthy = False
            await self._disable(f"the upstream refused our key ({error.status}: {error.message})")
        self._outcomes.append(healthy)
        if healthy:
            self.breaker.success()
        else:
            self._errors += 1
            self.breaker.failure()

    async def _disable(self, reason: str) -> None:
        if self.disabled_reason is not None:
            return
        self.disabled_reason = reason
        log.error("channel %s disabled: %s", self.name, reason)
        if self._on_disabled is not None:
            try:
                await self._on_disabled(self, reason)
            except Exception:  # telling admins must never break the caller's call
                log.exception("could not record that channel %s was disabled", self.name)

    async def _guarded(self, call: Callable[[], Awaitable[T]]) -> T:
        self._admit()
        started = trio.current_time()
        try:
            result = await call()
        except UpstreamError as error:
            await self._report(started, error)
            raise
        except BaseException:
            self.breaker.release()  # cancelled (or a bug): no verdict on the channel
            raise
        await self._report(started, None)
        return result

    # -- Provider -------------------------------------------------------------------
    async def submit(self, request: SubmitRequest, *, on_send: OnSend | None = None) -> UpstreamJob:
        return await self._guarded(lambda: self.inner.submit(request, on_send=on_send))

    async def remix(
        self, job_id: str, prompt: str, *, on_send: OnSend | None = None
    ) -> UpstreamJob:
        return await self._guarded(lambda: self.inner.remix(job_id, prompt, on_send=on_send))

    async def get(self, job_id: str) -> UpstreamJob:
        return await self._guarded(lambda: self.inner.get(job_id))

    async def list_jobs(self, after: str | None = None, limit: int = 100) -> JobPage:
        return await self._guarded(lambda: self.inner.list_jobs(after, limit))

    async def find_jobs(self, request: SubmitRequest, *, pages: int = 3) -> list[UpstreamJob]:
        return await self._guarded(lambda: self.inner.find_jobs(request, pages=pages))

    async def cancel(self, job_id: str) -> bool:
        return await self._guarded(lambda: self.inner.cancel(job_id))

    async def fetch_content(
        self, job_id: str, variant: ContentVariant = "video"
    ) -> AsyncGenerator[bytes, None]:
        self._admit()
        started = trio.current_time()
        try:
            async with aclosing(self.inner.fetch_content(job_id, variant)) as chunks:
                async for chunk in chunks:
                    yield chunk
        except UpstreamError as error:
            await self._report(started, error)
            raise
        except BaseException:
            self.breaker.release()  # stopped early or cancelled: no verdict
            raise
        await self._report(started, None)

    def forget(self, job_id: str) -> None:
        self.inner.forget(job_id)

    async def aclose(self) -> None:
        await self.inner.aclose()


def _disables(error: UpstreamError) -> bool:
    """A 401, or a 403 that is not a content-policy refusal: our key is not accepted."""
    return error.kind is ErrorKind.AUTH or (error.status == 403 and error.kind is ErrorKind.QUOTA)


class NoChannel(Exception):
    """No channel can take a task: none serves it (``reason`` "unserved"), every one that
    does is disabled ("disabled"), or all are busy or cooling down ("unavailable")."""

    def __init__(self, reason: str, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.retry_after_s = retry_after_s


class ChannelSet:
    """Every channel of this process, by name, and the router among them."""

    def __init__(self, channels: Iterable[Channel], *, rng: random.Random | None = None) -> None:
        self.channels: dict[str, Channel] = {}
        for channel in channels:
            if channel.name in self.channels:
                raise ValueError(f"channel {channel.name!r} twice")
            self.channels[channel.name] = channel
        if not self.channels:
            raise ValueError("at least one channel is needed")
        self._rng = rng or random.Random()
        # Deleted at run time: out of routing, still there for the tasks already on them.
        self.retired: dict[str, Channel] = {}

    def put(self, channel: Channel) -> None:
        """Add a channel, or replace the one of its name: new tasks may be routed to it,
        and the tasks on that name use it from their next call."""
        self.retired.pop(channel.name, None)
        self.channels[channel.name] = channel

    def keep(self, channel: Channel) -> None:
        """A channel out of routing from the start: only tasks already on it use it."""
        if channel.name not in self.channels:
            self.retired[channel.name] = channel

    def retire(self, name: str) -> None:
        """Take a channel out of routing; tasks already on it keep using it until they
        end (or the process restarts). The last channel cannot go (ValueError)."""
        if name not in self.channels:
            return
        if len(self.channels) == 1:
            raise ValueError("at least one channel is needed")
        self.retired[name] = self.channels.pop(name)

    @classmethod
    def single(cls, provider: Provider, name: str = DEFAULT_CHANNEL) -> ChannelSet:
        """One channel around a provider (embedded uses, tests of one upstream)."""
        limiter = getattr(provider, "limiter", None)
        limiters = (limiter,) if isinstance(limiter, Limiter) else ()
        return cls([Channel(ChannelInfo(name), provider, limiters=limiters)])

    @property
    def default(self) -> Channel:
        """Where tasks stored before channels existed (no channel recorded) belong."""
        return self.channels.get(DEFAULT_CHANNEL) or next(iter(self.channels.values()))

    def get(self, name: str | None) -> Channel:
        """The channel a task recorded (looked up at each call, so a channel an admin
        replaced serves its tasks with the new settings, and one deleted keeps serving the
        tasks already on it); an unknown name (removed from the settings before a restart)
        falls back to the default, whose answers (404) then end the task."""
        channel = self.channels.get(name or DEFAULT_CHANNEL) or self.retired.get(
            name or DEFAULT_CHANNEL
        )
        if name is None:
            return channel or self.default
        if channel is None:
            log.warning("channel %r is not configured any more; using %s", name, self.default.name)
            return self.default
        return channel

    def named(self, name: str) -> Channel | None:
        """Exactly the channel of that name (an upstream webhook names its channel; its
        ``info.webhook_secret`` verifies it), or None."""
        return self.channels.get(name)

    def pick(self, model: str, size: str, duration: int, *, exclude: Iterable[str] = ()) -> Channel:
        """Route a new task (see the module doc); raises NoChannel."""
        excluded = set(exclude)
        serving = [c for c in self.channels.values() if c.info.serves(model, size, duration)]
        if not serving:
            raise NoChannel("unserved", f"no channel serves {model} {size} {duration} s")
        alive = [c for c in serving if c.info.enabled and c.disabled_reason is None]
        if not alive:
            raise NoChannel("disabled", f"every channel serving {model} is disabled")
        usable = [c for c in alive if c.name not in excluded and c.breaker.available()]
        if not usable:
            waits = [c.breaker.retry_in() for c in alive if c.breaker.retry_in() > 0]
            raise NoChannel(
                "unavailable",
                f"every channel serving {model} is cooling down or was just tried",
                retry_after_s=min(waits) if waits else None,
            )
        free = [c for c in usable if c.has_free_slot()] or usable
        top = max(c.info.priority for c in free)
        group = [c for c in free if c.info.priority == top]
        return self._rng.choices(group, weights=[c.info.weight for c in group])[0]

    def statistics(self) -> list[ChannelStatistics]:
        return [channel.statistics() for channel in self.channels.values()]

    async def aclose(self) -> None:
        for channel in [*self.channels.values(), *self.retired.values()]:
            await channel.aclose()


def as_channels(upstream: Provider | ChannelSet) -> ChannelSet:
    """A provider given where channels are expected becomes the one default channel."""
    return upstream if isinstance(upstream, ChannelSet) else ChannelSet.single(upstream)
