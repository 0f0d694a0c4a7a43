"""The job-progression engine shared by the HTTP simulator and the in-memory provider.

One engine holds the fake upstream's state: jobs, their timelines, per-key
limits, fault rolls and the counters tests read. It speaks neither HTTP nor our
client types; the simulator renders its answers as HTTP, MemoryProvider as
`UpstreamJob`/`UpstreamError`. Time is `trio.current_time()` (so MockClock
works): job timelines run `time_scale` times faster, request-rate windows and
Retry-After values are in real (Trio) seconds because they pace the client.
"""

from __future__ import annotations

import heapq
import math
import random
import time
from collections import Counter, deque
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal

import trio

Dialect = Literal["openai", "gateway", "replicate"]
ResponseFault = Literal["drop", "slow", "malformed"]

SIZES = ("720x1280", "1280x720", "1024x1792", "1792x1024")
OPENAI_SECONDS = ("4", "8", "12")
GATEWAY_SECONDS = ("4", "5", "8", "10", "12", "15")

# Prompt markers so end-to-end tests can force an outcome without admin calls.
MARK_FAIL = "#sim-fail"  # the job runs, then fails with a content-policy error
MARK_REJECT = "#sim-reject"  # the create itself is refused with a 400 moderation error


@dataclass(frozen=True, slots=True)
class DurationDistribution:
    """Queue wait (uniform) and run time (log-normal, clipped), in simulated seconds."""

    queue_min_s: float = 2.0
    queue_max_s: float = 20.0
    run_median_s: float = 90.0
    run_sigma: float = 0.35
    run_min_s: float = 45.0
    run_max_s: float = 160.0
    # "uniform": run time uniform between run_min_s and run_max_s (the polling bench's mix).
    run_shape: Literal["lognormal", "uniform"] = "lognormal"

    def draw(self, rng: random.Random) -> tuple[float, float]:
        queue = rng.uniform(self.queue_min_s, self.queue_max_s)
        if self.run_shape == "uniform":
            return queue, rng.uniform(self.run_min_s, self.run_max_s)
        run = self.run_median_s * math.exp(rng.gauss(0.0, self.run_sigma))
        return queue, min(self.run_max_s, max(self.run_min_s, run))


@dataclass(frozen=True, slots=True)
class FaultRates:
    """Probability (0..1) of each fault per request; adjustable at runtime via the admin API."""

    server_error: float = 0.0  # 500/503 with an API error body, nothing done
    rate_limit: float = 0.0  # 429 with retry-after / retry-after-ms, nothing done
    slow: float = 0.0  # the work is done, the response comes after `slow_s`
    drop: float = 0.0  # the work is done, the socket is closed without a response
    malformed: float = 0.0  # the work is done, the body is not JSON
    content_policy: float = 0.0  # a created job later fails with a moderation error
    retry_after_ms: int = 1000
    slow_s: float = 5.0

    def validate(self) -> None:
        for f in ("server_error", "rate_limit", "slow", "drop", "malformed", "content_policy"):
            v = getattr(self, f)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"fault rate {f}={v} is not within 0..1")


@dataclass(frozen=True, slots=True)
class KeyLimits:
    """Per-key limits like real gateways (~10 req/min, 5 concurrent jobs); None = unlimited."""

    requests_per_window: int | None = None
    window_s: float = 60.0
    max_concurrent_jobs: int | None = None


@dataclass(frozen=True, slots=True)
class WebhookConfig:
    """Where the fake upstream calls back when a job ends, signed with its own ``whsec_``
    secret (Standard Webhooks), losing ``loss`` of them and delaying the rest uniformly
    between ``delay_min_s`` and ``delay_max_s`` (Trio seconds), seeded."""

    url: str
    secret: str
    loss: float = 0.0
    delay_min_s: float = 0.2
    delay_max_s: float = 0.8

    def validate(self) -> None:
        if not 0.0 <= self.loss <= 1.0:
            raise ValueError(f"webhook loss {self.loss} is not within 0..1")
        if not 0.0 <= self.delay_min_s <= self.delay_max_s:
            raise ValueError("webhook delays must satisfy 0 <= min <= max")


@dataclass(frozen=True, slots=True)
class SimulatorConfig:
    """Everything about the fake upstream; used by both the HTTP simulator and MemoryProvider."""

    time_scale: float = 1.0
    seed: int = 0
    api_key: str | None = None  # None: any non-empty key is accepted
    base_path: str | None = None  # None: "/v1", or "/sora/v1" for the gateway dialect
    dialect: Dialect = "openai"
    faults: FaultRates = field(default_factory=FaultRates)
    durations: DurationDistribution = field(default_factory=DurationDistribution)
    content_ttl_s: float = 3600.0  # simulated seconds from completion to expiry
    limits: KeyLimits = field(default_factory=KeyLimits)
    admin_token: str | None = None  # None: admin endpoints need no auth
    poll_after_s: float = 5.0  # simulated seconds suggested between polls
    # "uneven": `progress_curve`; "linear": progress proportional to time (the polling bench).
    progress_shape: Literal["uneven", "linear"] = "uneven"
    # Webhooks on job end (see `webhooks`); None: none are sent.
    webhooks: WebhookConfig | None = None

    @property
    def effective_base_path(self) -> str:
        if self.base_path is not None:
            return "/" + self.base_path.strip("/") if self.base_path.strip("/") else ""
        return "/sora/v1" if self.dialect == "gateway" else "/v1"  # Replicate's is /v1 too


class EngineError(Exception):
    """An API error the engine answers with; rendered per dialect by the front end."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        type: str = "invalid_request_error",
        param: str | None = None,
        retry_after_s: float | None = None,
        reason: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.type = type
        self.param = param
        self.retry_after_s = retry_after_s
        self.reason = reason or code or str(status)


class Job:
    """One simulated job. Slotted and derived-on-read to stay small for 10k+ jobs."""

    __slots__ = (
        "cancelled",
        "created",
        "deleted",
        "done",
        "expires",
        "fail_code",
        "id",
        "key",
        "model",
        "prompt",
        "remixed_from",
        "seconds",
        "shape",
        "size",
        "start",
    )

    def __init__(
        self,
        id: str,
        key: str,
        created: float,
        start: float,
        done: float,
        fail_code: str | None,
        model: str,
        size: str,
        seconds: str,
        prompt: str,
        remixed_from: str | None,
        shape: int,
    ) -> None:
        self.id = id
        self.key = key
        self.created = created
        self.start = start
        self.done = done
        self.fail_code = fail_code
        self.model = model
        self.size = size
        self.seconds = seconds
        self.prompt = prompt
        self.remixed_from = remixed_from
        self.expires: float | None = None  # forced expiry; otherwise done + ttl
        self.deleted = False
        self.shape = shape
        # (when, progress then) once cancelled: the job stops where it was.
        self.cancelled: tuple[float, int] | None = None


@dataclass(frozen=True, slots=True)
class JobState:
    """A job as seen at one instant, in OpenAI terms."""

    job: Job
    status: Literal["queued", "in_progress", "completed", "failed", "cancelled"]
    progress: int
    completed_at: float | None
    expires_at: float | None


_FAIL_MESSAGES = {
    "moderation_blocked": "Your request was blocked by our moderation system.",
}


def progress_curve(frac: float, shape: int) -> float:
    """Monotone, uneven 0..1 -> 0..1 curve: an eased ramp with a per-job wobble.

    p(x) = y - A*sin(2*pi*k*y)/(2*pi*k) with y = x**g; its derivative in y is
    1 - A*cos(...) >= 0 for A < 1, so progress never goes backwards, and
    p(1) = 1 because k is an integer.
    """
    k = 2 + shape % 3
    amp = 0.5 + ((shape >> 2) % 64) / 64 * 0.45
    g = 0.8 + ((shape >> 8) % 64) / 64 * 0.6
    y = math.pow(max(0.0, min(1.0, frac)), g)
    return y - amp * math.sin(2 * math.pi * k * y) / (2 * math.pi * k)


class Engine:
    """Shared fake-upstream state and rules."""

    def __init__(self, config: SimulatorConfig) -> None:
        config.faults.validate()
        if config.time_scale <= 0:
            raise ValueError("time_scale must be positive")
        self.config = config
        self.faults = config.faults
        self.limits = config.limits
        self._rng = random.Random(config.seed)
        self._fault_rng = random.Random(f"faults-{config.seed}")
        self._epoch0 = time.time()
        self._t0: float | None = None
        self.jobs: dict[str, Job] = {}
        self._by_key: dict[str, list[Job]] = {}
        self._active: dict[str, list[tuple[float, int, Job]]] = {}
        self._windows: dict[str, deque[float]] = {}
        self.creates_by_key: Counter[str] = Counter()
        self.polls_by_job: Counter[str] = Counter()
        self.refused: Counter[str] = Counter()
        self.faults_injected: Counter[str] = Counter()
        self.requests_total = 0
        self.cancels = 0
        self.peak_active_by_key: Counter[str] = Counter()
        # (trio time, key, op, job id or "", outcome, retry_after_s or None, client)
        self.request_log: deque[tuple[float, str, str, str, str, float | None, str]] = deque(
            maxlen=50_000
        )
        # Job ends still to announce by webhook: (simulated end time, n, job id), a heap.
        self.webhooks = config.webhooks
        if self.webhooks is not None:
            self.webhooks.validate()
        self._ends: list[tuple[float, int, str]] = []
        self._announced: set[str] = set()
        self._ends_changed = trio.Event()
        self._webhook_rng = random.Random(f"webhooks-{config.seed}")
        self.webhooks_sent = 0
        self.webhooks_lost = 0
        self.webhooks_failed = 0

    # -- time ---------------------------------------------------------------
    def trio_now(self) -> float:
        return trio.current_time()

    def now(self) -> float:
        """Simulated unix time: starts at wall time, runs `time_scale` x faster than Trio."""
        t = trio.current_time()
        if self._t0 is None:
            self._t0 = t
        return self._epoch0 + (t - self._t0) * self.config.time_scale

    # -- admin --------------------------------------------------------------
    def set_faults(self, **changes: Any) -> FaultRates:
        names = {f.name for f in fields(FaultRates)}
        bad = set(changes) - names
        if bad:
            raise ValueError(f"unknown fault fields: {sorted(bad)}")
        new = replace(self.faults, **changes)
        new.validate()
        self.faults = new
        return new

    def set_limits(self, **changes: Any) -> KeyLimits:
        names = {f.name for f in fields(KeyLimits)}
        bad = set(changes) - names
        if bad:
            raise ValueError(f"unknown limit fields: {sorted(bad)}")
        self.limits = replace(self.limits, **changes)
        return self.limits

    def reset_counters(self) -> None:
        self.creates_by_key.clear()
        self.polls_by_job.clear()
        self.refused.clear()
        self.faults_injected.clear()
        self.requests_total = 0
        self.cancels = 0
        self.peak_active_by_key.clear()
        self.request_log.clear()
        self.webhooks_sent = self.webhooks_lost = self.webhooks_failed = 0

    def stats(self) -> dict[str, Any]:
        return {
            "requests_total": self.requests_total,
            "cancels": self.cancels,
            "creates_by_key": dict(self.creates_by_key),
            "creates_total": sum(self.creates_by_key.values()),
            "polls_by_job": dict(self.polls_by_job),
            "refused": dict(self.refused),
            "faults_injected": dict(self.faults_injected),
            "peak_active_by_key": dict(self.peak_active_by_key),
            "jobs_total": len(self.jobs),
            "webhooks": {
                "sent": self.webhooks_sent,
                "lost": self.webhooks_lost,
                "failed": self.webhooks_failed,
            },
            "faults": {f.name: getattr(self.faults, f.name) for f in fields(FaultRates)},
            "limits": {f.name: getattr(self.limits, f.name) for f in fields(KeyLimits)},
        }

    def force(
        self, job_id: str, outcome: Literal["complete", "fail", "expire"], code: str | None = None
    ) -> Job:
        """Admin/test hook: finish a job now (completed or failed), or expire its content now."""
        job = self._live(job_id)
        now = self.now()
        if outcome == "expire":
            job.expires = now
            if job.done > now:
                job.done = now
                job.start = min(job.start, now)
        else:
            job.start = min(job.start, now)
            job.done = min(job.done, now)
            job.fail_code = (code or "moderation_blocked") if outcome == "fail" else None
            self._note_end(job)
        self._reindex_active(job)
        return job

    # -- admission ----------------------------------------------------------
    def log(
        self,
        key: str,
        op: str,
        job_id: str,
        outcome: str,
        retry_after_s: float | None = None,
        client: str = "",
    ) -> None:
        self.request_log.append(
            (trio.current_time(), key, op, job_id, outcome, retry_after_s, client)
        )

    def admit(self, key: str, op: str, job_id: str = "", client: str = "") -> None:
        """Count the request; raise EngineError on an injected fault or a per-key limit."""
        self.requests_total += 1
        try:
            self._admit(key, op)
        except EngineError as e:
            self.refused[e.reason] += 1
            self.log(key, op, job_id, f"refused:{e.reason}", e.retry_after_s, client)
            raise
        self.log(key, op, job_id, "ok", client=client)

    def _admit(self, key: str, op: str) -> None:
        f = self.faults
        if f.server_error and self._fault_rng.random() < f.server_error:
            self.faults_injected["server_error"] += 1
            raise EngineError(
                503 if self._fault_rng.random() < 0.5 else 500,
                "The server had an error while processing your request. Sorry about that!",
                type="server_error",
                code="server_error",
                reason="fault_server_error",
            )
        if f.rate_limit and self._fault_rng.random() < f.rate_limit:
            self.faults_injected["rate_limit"] += 1
            raise EngineError(
                429,
                "Rate limit reached. Please try again later.",
                type="requests",
                code="rate_limit_exceeded",
                retry_after_s=f.retry_after_ms / 1000.0,
                reason="fault_rate_limit",
            )
        lim = self.limits
        if lim.requests_per_window is not None:
            now = trio.current_time()
            win = self._windows.setdefault(key, deque())
            while win and win[0] <= now - lim.window_s:
                win.popleft()
            if len(win) >= lim.requests_per_window:
                wait = win[0] + lim.window_s - now
                raise EngineError(
                    429,
                    f"Rate limit reached: {lim.requests_per_window} requests"
                    f" per {lim.window_s:g}s.",
                    type="requests",
                    code="rate_limit_exceeded",
                    retry_after_s=max(0.001, wait),
                    reason="key_rate_limit",
                )
            win.append(now)
        if op in ("create", "remix") and lim.max_concurrent_jobs is not None:
            active = self._prune_active(key)
            if len(active) >= lim.max_concurrent_jobs:
                raise EngineError(
                    429,
                    f"Too many concurrent jobs: limit is {lim.max_concurrent_jobs}.",
                    type="requests",
                    code="concurrency_limit_exceeded",
                    retry_after_s=self.config.poll_after_s / self.config.time_scale,
                    reason="key_concurrency_limit",
                )

    def roll_response_fault(self, op: str) -> ResponseFault | None:
        """After the work is done: drop, delay or garble (JSON only) the response?"""
        f = self.faults
        for name in ("drop", "slow", "malformed") if op != "content" else ("drop", "slow"):
            rate: float = getattr(f, name)
            if rate and self._fault_rng.random() < rate:
                self.faults_injected[name] += 1
                if self.request_log:  # callers roll right after admit(): the last entry is theirs
                    t, key, op_, job_id, _, ra, client = self.request_log[-1]
                    self.request_log[-1] = (t, key, op_, job_id, f"ok+{name}", ra, client)
                return name
        return None

    def _prune_active(self, key: str) -> list[tuple[float, int, Job]]:
        """The key's non-terminal jobs, as a heap by end time (amortised O(log n) per create)."""
        now = self.now()
        heap = self._active.setdefault(key, [])
        while heap and heap[0][0] <= now:
            heapq.heappop(heap)
        return heap

    def _reindex_active(self, job: Job) -> None:
        """A job's end time changed or it was deleted: rebuild its key's heap (rare admin path)."""
        heap = [(j.done, n, j) for _, n, j in self._active.get(job.key, ()) if not j.deleted]
        heapq.heapify(heap)
        self._active[job.key] = heap

    # -- operations ---------------------------------------------------------
    def create(
        self,
        key: str,
        prompt: str,
        model: str | None = None,
        size: str | None = None,
        seconds: str | None = None,
        *,
        remixed_from: str | None = None,
    ) -> Job:
        """Validate and start a job; raises EngineError(400) like the real API."""
        allowed_seconds = GATEWAY_SECONDS if self.config.dialect == "gateway" else OPENAI_SECONDS
        if not prompt or not prompt.strip():
            raise EngineError(
                400,
                "Missing required parameter: 'prompt'.",
                param="prompt",
                code="missing_required_parameter",
            )
        size = size or "720x1280"
        seconds = str(seconds) if seconds is not None else "4"
        model = model or "sora-2"
        if size not in SIZES:
            raise EngineError(
                400,
                f"Invalid value: '{size}'. Supported values are: {', '.join(SIZES)}.",
                param="size",
                code="invalid_value",
            )
        if seconds not in allowed_seconds:
            raise EngineError(
                400,
                f"Invalid value: '{seconds}'. Supported values are: {', '.join(allowed_seconds)}.",
                param="seconds",
                code="invalid_value",
            )
        if not model.startswith("sora-2"):
            raise EngineError(400, f"Invalid model '{model}'.", param="model", code="invalid_value")
        if MARK_REJECT in prompt:
            raise EngineError(
                400,
                "Your request was rejected as a result of our safety system.",
                code="moderation_blocked",
                reason="moderation",
            )
        now = self.now()
        queue, run = self.config.durations.draw(self._rng)
        fail_code: str | None = None
        if MARK_FAIL in prompt or (
            self.faults.content_policy and self._fault_rng.random() < self.faults.content_policy
        ):
            fail_code = "moderation_blocked"
            run *= 0.4  # moderation stops the render part-way
        job = Job(
            id=f"video_{self._rng.getrandbits(96):024x}",
            key=key,
            created=now,
            start=now + queue,
            done=now + queue + run,
            fail_code=fail_code,
            model=model,
            size=size,
            seconds=seconds,
            prompt=prompt,
            remixed_from=remixed_from,
            shape=self._rng.getrandbits(16),
        )
        self.jobs[job.id] = job
        self._by_key.setdefault(key, []).append(job)
        self.creates_by_key[key] += 1
        active = self._prune_active(key)
        heapq.heappush(active, (job.done, len(self.jobs), job))
        self.peak_active_by_key[key] = max(self.peak_active_by_key[key], len(active))
        self._note_end(job)
        return job

    # -- webhooks -------------------------------------------------------------
    def set_webhooks(self, config: WebhookConfig | None) -> None:
        if config is not None:
            config.validate()
        self.webhooks = config

    def _note_end(self, job: Job) -> None:
        heapq.heappush(self._ends, (job.done, len(self._ends), job.id))
        self._ends_changed.set()

    def trio_time_of(self, simulated: float) -> float:
        """The Trio time at which simulated unix time ``simulated`` comes."""
        now = self.now()
        return trio.current_time() + (simulated - now) / self.config.time_scale

    async def wait_for_ends(self) -> list[JobState]:
        """Jobs that ended (completed or failed) since the last call, each once, as soon as
        the first of them ends."""
        while True:
            now = self.now()
            ended: list[JobState] = []
            while self._ends and self._ends[0][0] <= now:
                _, _, job_id = heapq.heappop(self._ends)
                job = self.jobs.get(job_id)
                if job is None or job.deleted or job_id in self._announced:
                    continue
                if job.done > now:  # moved later meanwhile
                    heapq.heappush(self._ends, (job.done, len(self._ends), job.id))
                    continue
                self._announced.add(job_id)
                ended.append(self.state(job))
            if ended:
                return ended
            self._ends_changed = trio.Event()
            deadline = self.trio_time_of(self._ends[0][0]) if self._ends else math.inf
            with trio.move_on_at(deadline):
                await self._ends_changed.wait()

    def webhook_fate(self) -> float | None:
        """Seconds until this webhook arrives, or None when it is lost (seeded)."""
        hooks = self.webhooks
        if hooks is None:
            return None
        if hooks.loss and self._webhook_rng.random() < hooks.loss:
            self.webhooks_lost += 1
            return None
        return self._webhook_rng.uniform(hooks.delay_min_s, hooks.delay_max_s)

    def _live(self, job_id: str) -> Job:
        job = self.jobs.get(job_id)
        if job is None or job.deleted:
            raise EngineError(
                404,
                f"Video with id '{job_id}' not found.",
                param="video_id",
                code="video_not_found",
                reason="not_found",
            )
        return job

    def _owned(self, key: str, job_id: str) -> Job:
        job = self._live(job_id)
        if job.key != key:  # other keys' jobs look like they do not exist
            raise EngineError(
                404,
                f"Video with id '{job_id}' not found.",
                param="video_id",
                code="video_not_found",
                reason="not_found",
            )
        return job

    def state(self, job: Job) -> JobState:
        now = self.now()
        if job.cancelled is not None:
            return JobState(job, "cancelled", job.cancelled[1], job.cancelled[0], None)
        if now < job.start:
            return JobState(job, "queued", 0, None, None)
        if now < job.done:
            frac = (now - job.start) / (job.done - job.start)
            if self.config.progress_shape == "uneven":
                frac = progress_curve(frac, job.shape)
            # 100 % only once completed, as the OpenAI API says.
            return JobState(job, "in_progress", min(99, int(100 * frac)), None, None)
        if job.fail_code is not None:
            return JobState(
                job, "failed", int(99 * progress_curve(1.0, job.shape) * 0.4), job.done, None
            )
        expires = job.expires if job.expires is not None else job.done + self.config.content_ttl_s
        return JobState(job, "completed", 100, job.done, expires)

    def retrieve(self, key: str, job_id: str) -> JobState:
        job = self._owned(key, job_id)
        self.polls_by_job[job_id] += 1
        return self.state(job)

    def poll_after_ms(self, st: JobState) -> int:
        """Real milliseconds to suggest before the next poll."""
        return max(10, int(self.config.poll_after_s / self.config.time_scale * 1000))

    def remix(self, key: str, job_id: str, prompt: str) -> Job:
        src = self._owned(key, job_id)
        st = self.state(src)
        if st.status != "completed":
            raise EngineError(
                400,
                f"Video '{job_id}' is not completed and cannot be remixed.",
                param="video_id",
                code="invalid_state",
            )
        return self.create(key, prompt, src.model, src.size, src.seconds, remixed_from=src.id)

    def cancel(self, key: str, job_id: str) -> JobState:
        """Stop a queued or running job where it is (a finished one stays as it is)."""
        job = self._owned(key, job_id)
        st = self.state(job)
        if st.status in ("queued", "in_progress"):
            now = self.now()
            job.cancelled = (now, st.progress)
            job.done = min(job.done, now)
            job.start = min(job.start, now)
            self._reindex_active(job)
            self.cancels += 1
        return self.state(job)

    def delete(self, key: str, job_id: str) -> Job:
        job = self._owned(key, job_id)
        job.deleted = True
        job.prompt = ""
        if job.done > self.now():  # only a running job's deletion changes the active count
            self._reindex_active(job)
        return job

    def content_check(self, key: str, job_id: str) -> JobState:
        """Raise unless the job's media can be served now."""
        job = self._owned(key, job_id)
        st = self.state(job)
        if st.status != "completed":
            raise EngineError(
                400 if st.status != "failed" else 404,
                f"Video '{job_id}' is not ready: status is {st.status}.",
                code="video_not_ready" if st.status != "failed" else "video_failed",
                reason="content_not_ready",
            )
        if st.expires_at is not None and self.now() >= st.expires_at:
            raise EngineError(
                404,
                f"Video content for '{job_id}' has expired.",
                code="video_expired",
                reason="content_expired",
            )
        return st

    def list(
        self, key: str, after: str | None, limit: int, order: str
    ) -> tuple[list[JobState], bool]:
        if not 1 <= limit <= 100:
            raise EngineError(
                400, "limit must be between 1 and 100.", param="limit", code="invalid_value"
            )
        seq = [j for j in self._by_key.get(key, ()) if not j.deleted]
        if order == "desc":
            seq.reverse()
        elif order != "asc":
            raise EngineError(
                400, "order must be 'asc' or 'desc'.", param="order", code="invalid_value"
            )
        start = 0
        if after:
            for i, j in enumerate(seq):
                if j.id == after:
                    start = i + 1
                    break
            else:
                raise EngineError(
                    404,
                    f"Video with id '{after}' not found.",
                    param="after",
                    code="video_not_found",
                    reason="not_found",
                )
        page = seq[start : start + limit]
        return [self.state(j) for j in page], start + limit < len(seq)

    def fail_message(self, code: str) -> str:
        return _FAIL_MESSAGES.get(code, "Video generation failed.")
