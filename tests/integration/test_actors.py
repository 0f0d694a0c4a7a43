"""Task actors and the supervisor, in virtual time, on the in-memory upstream.

`autojump_clock` is pytest-trio's `MockClock(autojump_threshold=0)`: sleeps take no real
time, so the polling schedule is asserted to the exact second. Storage is real SQLite (its
I/O arms no Trio timers, so the virtual clock only moves when the actor sleeps).
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
import trio

from sora_actors.hub import Hub, TaskEvent
from sora_actors.lifecycle import Phase
from sora_actors.storage import Activity, Storage, Task, open_storage
from sora_actors.supervisor import RestartIntensity, Supervisor
from sora_actors.task import ActorConfig
from sora_actors.task_service import Order, TaskService
from sora_actors.upstream import ErrorKind, OnSend, SubmitRequest, UpstreamError, UpstreamJob
from sora_actors.upstream.fake import DurationDistribution, MemoryProvider, SimulatorConfig
from sora_actors.upstream.fake.engine import Engine

# Deterministic jobs: 10 s in the queue, then 100 s of (uneven) progress.
FIXED = DurationDistribution(
    queue_min_s=10, queue_max_s=10, run_median_s=100, run_sigma=0, run_min_s=100, run_max_s=100
)


@dataclass
class Recorder:
    """A Provider wrapper that notes when each call happened and can crash on demand."""

    inner: MemoryProvider
    calls: list[tuple[str, float]] = field(default_factory=list)
    polls: list[tuple[float, int]] = field(default_factory=list)  # (time, progress seen)
    crash: dict[str, Callable[[], bool]] = field(default_factory=dict)
    changed: trio.Event = field(default_factory=trio.Event)

    def note(self, name: str) -> None:
        self.calls.append((name, trio.current_time()))
        self.changed.set()
        self.changed = trio.Event()

    def _maybe_crash(self, name: str) -> None:
        check = self.crash.get(name)
        if check is not None and check():
            raise RuntimeError(f"injected crash in {name}")

    async def submit(self, request: SubmitRequest, *, on_send: OnSend | None = None) -> UpstreamJob:
        self.note("submit")
        self._maybe_crash("submit-before")
        job = await self.inner.submit(request, on_send=on_send)
        self._maybe_crash("submit-after")  # created upstream, answer lost
        return job

    async def get(self, job_id: str) -> UpstreamJob:
        now = trio.current_time()
        self.note("get")
        self._maybe_crash("get")
        job = await self.inner.get(job_id)
        self.polls.append((now, job.progress))
        return job

    async def find_jobs(self, request: SubmitRequest, *, pages: int = 3) -> list[UpstreamJob]:
        self.note("list")
        return await self.inner.find_jobs(request, pages=pages)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@dataclass
class Harness:
    storage: Storage
    tasks: TaskService
    provider: Recorder
    hub: Hub
    supervisor: Supervisor
    events: list[tuple[float, TaskEvent]]
    user_id: str

    async def create(self, prompt: str = "a lighthouse in a storm", duration: int = 4) -> Task:
        task, _ = await self.tasks.accept(self.user_id, Order(prompt, duration=duration))
        return task

    async def wait_until(self, condition: Callable[[], bool]) -> None:
        """Wait, with no timer of our own (a timer would let the virtual clock jump while
        the actor waits for the database), until an event or upstream call makes it true."""
        while not condition():
            await self.provider.changed.wait()

    async def until_terminal(self, video_id: str) -> Task:
        def ended() -> bool:
            return any(e.task.video_id == video_id and e.task.terminal for _, e in self.events)

        await self.wait_until(ended)
        task = await self.storage.tasks.get(video_id)
        assert task is not None and task.terminal
        return task

    def seqs(self, video_id: str) -> list[int]:
        return [e.task.seq for _, e in self.events if e.task.video_id == video_id]


@asynccontextmanager
async def running(
    url: str,
    *,
    config: ActorConfig | None = None,
    intensity: RestartIntensity | None = None,
    simulator: SimulatorConfig | None = None,
    provider: MemoryProvider | None = None,
) -> AsyncIterator[Harness]:
    async with open_storage(url) as storage:
        user = await storage.accounts.create_user("actor-test", None, "x", Activity("register"))
        inner = provider or MemoryProvider(simulator or SimulatorConfig(durations=FIXED, seed=7))
        recorder = Recorder(inner)
        hub = Hub()
        events: list[tuple[float, TaskEvent]] = []

        def listen(event: TaskEvent) -> None:
            events.append((trio.current_time(), event))
            recorder.note("event")

        hub.add_listener(listen)
        tasks = TaskService(storage, hub)
        supervisor = Supervisor(
            storage=storage,
            provider=recorder,  # type: ignore[arg-type]
            tasks=tasks,
            actor_config=config or ActorConfig(),
            intensity=intensity,
        )
        async with trio.open_nursery() as nursery:
            await nursery.start(supervisor.run)
            yield Harness(storage, tasks, recorder, hub, supervisor, events, user.id)
            nursery.cancel_scope.cancel()


def expected_gap(progress: int) -> int:
    """The old backend's schedule, written out independently of sora_actors.polling."""
    if progress < 30:
        return 5
    if progress < 70:
        return 10
    return 15


async def test_poll_schedule_is_exact(
    sqlite_url: str, autojump_clock: trio.testing.MockClock
) -> None:
    async with running(sqlite_url) as h:
        t0 = trio.current_time()
        task = await h.create()
        done = await h.until_terminal(task.video_id)
        assert done.status == "COMPLETED" and done.progress == 100, (
            done.error_code,
            done.error_message,
        )

        submit_at = next(t for name, t in h.provider.calls if name == "submit")
        times = [t for t, _ in h.provider.polls]
        assert submit_at == t0
        assert times[0] == submit_at  # the first poll comes at once
        gaps = [b - a for a, b in itertools.pairwise(times)]
        wanted = [expected_gap(progress) for _, progress in h.provider.polls[:-1]]
        assert gaps == wanted
        assert {5, 10, 15} <= set(gaps)  # the job crossed all three bands
        assert done.poll_count == len(times)
        # Every announced change has the next seq number; progress never went down.
        seqs = h.seqs(task.video_id)
        assert seqs == list(range(2, 2 + len(seqs)))
        progress = [e.task.progress for _, e in h.events]
        assert progress == sorted(progress)


async def test_retry_after_and_failed_polls(
    sqlite_url: str, autojump_clock: trio.testing.MockClock
) -> None:
    async with running(sqlite_url) as h:
        h.provider.inner.inject_error(
            "get", UpstreamError(ErrorKind.RATE_LIMITED, "slow down", status=429, retry_after_s=12)
        )
        task = await h.create()
        await h.wait_until(lambda: len(h.provider.polls) >= 1)
        gets = [t for name, t in h.provider.calls if name == "get"]
        assert gets[1] - gets[0] == 12  # Retry-After beats the 5 s schedule
        h.provider.inner.inject_error("get", UpstreamError(ErrorKind.TRANSIENT, "502", status=502))
        before = len(gets)
        await h.wait_until(lambda: sum(n == "get" for n, _ in h.provider.calls) >= before + 2)
        gets = [t for name, t in h.provider.calls if name == "get"]
        assert gets[before + 1] - gets[before] == 5  # 5 s after a failed poll
        done = await h.until_terminal(task.video_id)
        assert done.status == "COMPLETED"


async def test_deadline_fails_the_task(
    sqlite_url: str, autojump_clock: trio.testing.MockClock
) -> None:
    async with running(sqlite_url, config=ActorConfig(task_deadline_s=30)) as h:
        t0 = trio.current_time()
        task = await h.create()
        done = await h.until_terminal(task.video_id)
        assert done.status == "FAILED"
        assert done.error_code == "DEADLINE_EXCEEDED"
        end = next(t for t, e in h.events if e.task.status == "FAILED")
        assert end - t0 == 30


async def test_restart_intensity_gives_up(
    sqlite_url: str, autojump_clock: trio.testing.MockClock
) -> None:
    intensity = RestartIntensity(max_restarts=3, period_s=60, backoff_base_s=0.5)
    async with running(sqlite_url, intensity=intensity) as h:
        h.provider.crash["get"] = lambda: True  # every poll crashes the actor
        task = await h.create()
        done = await h.until_terminal(task.video_id)
        assert done.status == "FAILED" and done.error_code == "ACTOR_CRASH_LOOP"
        gets = [t for name, t in h.provider.calls if name == "get"]
        # crash, 0.5 s backoff, crash, 1 s, crash, 2 s, crash -> 4 crashes > 3: given up
        assert [g - gets[0] for g in gets] == [0, 0.5, 1.5, 3.5]
        assert h.supervisor.statistics().crashes == 4
        assert h.supervisor.statistics().running == 0
        # Another task on the same supervisor is unaffected once the fault is gone.
        h.provider.crash.clear()
        other = await h.create(prompt="unaffected")
        assert (await h.until_terminal(other.video_id)).status == "COMPLETED"


def _once() -> Callable[[], bool]:
    fired = [False]

    def check() -> bool:
        if fired[0]:
            return False
        fired[0] = True
        return True

    return check


@pytest.mark.parametrize("where", ["submit-before", "submit-after", "get"])
async def test_a_crash_in_an_upstream_call_is_survived(
    sqlite_url: str, autojump_clock: trio.testing.MockClock, where: str
) -> None:
    config = ActorConfig(submit_settle_s=20)
    async with running(sqlite_url, config=config) as h:
        h.provider.crash[where] = _once()
        task = await h.create(prompt=f"crash at {where}")
        done = await h.until_terminal(task.video_id)
        assert done.status == "COMPLETED", done
        assert h.provider.inner.creates == 1  # never a second upstream job
        assert h.supervisor.statistics().crashes == 1
        if where == "submit-after":
            # The restarted actor found the job through the upstream's list and adopted it.
            assert any(name == "list" for name, _ in h.provider.calls)
            assert [name for name, _ in h.provider.calls].count("submit") == 1


@pytest.mark.parametrize(
    "phase", [Phase.SUBMITTING, Phase.POLLING, Phase.FETCHING, Phase.COMPLETED]
)
async def test_a_crash_before_each_transition_is_survived(
    sqlite_url: str,
    autojump_clock: trio.testing.MockClock,
    monkeypatch: pytest.MonkeyPatch,
    phase: Phase,
) -> None:
    async with running(sqlite_url, config=ActorConfig(submit_settle_s=20)) as h:
        real_change = h.storage.tasks.change
        fired = _once()

        async def change(task: Task, activity: Activity | None = None, **kw: Any) -> Task:
            if kw.get("phase") == phase.value and fired():
                raise RuntimeError(f"injected crash before {phase}")
            return await real_change(task, activity, **kw)

        monkeypatch.setattr(h.storage.tasks, "change", change)
        task = await h.create(prompt=f"crash before {phase}")
        done = await h.until_terminal(task.video_id)
        assert done.status == "COMPLETED"
        assert h.supervisor.statistics().crashes == 1
        assert h.provider.inner.creates == 1
        seqs = h.seqs(task.video_id)
        assert seqs == sorted(set(seqs))  # announced in order, none twice


async def test_lost_submission_is_resubmitted_only_after_settling(
    sqlite_url: str, autojump_clock: trio.testing.MockClock
) -> None:
    """Crash after the intent was stored but before the create reached the upstream: wait
    out the settle time, then resubmit."""
    async with running(sqlite_url, config=ActorConfig(submit_settle_s=20)) as h:
        real_submit = h.provider.inner.submit
        fired = _once()

        async def lose_first(
            request: SubmitRequest, *, on_send: OnSend | None = None
        ) -> UpstreamJob:
            if fired():
                assert on_send is not None
                await on_send()
                raise RuntimeError("crashed before the request left")
            return await real_submit(request, on_send=on_send)

        h.provider.inner.submit = lose_first  # type: ignore[method-assign]
        t0 = trio.current_time()
        task = await h.create(prompt="lost in transit")
        done = await h.until_terminal(task.video_id)
        assert done.status == "COMPLETED"
        submits = [t for name, t in h.provider.calls if name == "submit"]
        assert len(submits) == 2
        assert submits[1] - t0 >= 20  # not before the settle time
        assert h.provider.inner.creates == 1


async def test_ambiguous_create_is_looked_up_not_retried(
    sqlite_url: str, autojump_clock: trio.testing.MockClock
) -> None:
    async with running(sqlite_url) as h:
        h.provider.inner.inject_error(
            "submit", UpstreamError(ErrorKind.AMBIGUOUS_CREATE, "timed out"), after=True
        )
        task = await h.create(prompt="ambiguous")
        done = await h.until_terminal(task.video_id)
        assert done.status == "COMPLETED"
        assert h.provider.inner.creates == 1
        assert [name for name, _ in h.provider.calls].count("submit") == 1


async def test_upstream_failure_and_rejection(
    sqlite_url: str, autojump_clock: trio.testing.MockClock
) -> None:
    async with running(sqlite_url) as h:
        failing = await h.create(prompt="this will fail #sim-fail")
        rejected = await h.create(prompt="refused outright #sim-reject")
        failed = await h.until_terminal(failing.video_id)
        assert failed.status == "FAILED" and failed.error_code == "CONTENT_POLICY"
        refused = await h.until_terminal(rejected.video_id)
        assert refused.status == "FAILED" and refused.error_code == "CONTENT_POLICY"
        assert refused.external_video_id is None


@pytest.mark.parametrize("offset", [0.0, 0.001, 4.999, 5.0, 5.001])
async def test_cancel_racing_completion_ends_in_one_state(
    sqlite_url: str, autojump_clock: trio.testing.MockClock, offset: float
) -> None:
    async with running(sqlite_url) as h:
        task = await h.create(prompt="race")
        await h.wait_until(
            lambda: any(
                e.task.external_video_id for _, e in h.events if e.task.video_id == task.video_id
            )
        )
        current = await h.storage.tasks.get(task.video_id)
        assert current is not None and current.external_video_id is not None
        h.provider.inner.force_complete(current.external_video_id)
        await trio.sleep(offset)
        outcome = await h.supervisor.cancel(task.video_id, Activity("task_cancel", h.user_id))
        assert outcome is not None
        final = await h.until_terminal(task.video_id)
        terminal_events = [
            e.task.status
            for _, e in h.events
            if e.task.video_id == task.video_id and e.task.terminal
        ]
        assert len(terminal_events) == 1  # exactly one terminal announcement
        assert terminal_events[0] == final.status
        assert outcome.task.status == final.status
        assert outcome.cancelled == (final.status == "CANCELLED")


async def test_a_database_outage_does_not_take_the_runtime_down(
    sqlite_url: str, autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database goes away for a while (actor writes and reloads fail); the supervisor
    waits it out without counting crashes, and the task still completes."""
    from sora_actors.storage import StorageUnavailable

    async with running(sqlite_url) as h:
        real_change, real_get = h.storage.tasks.change, h.storage.tasks.get
        outage = {"left": 6}

        def down() -> bool:
            if outage["left"] > 0:
                outage["left"] -= 1
                return True
            return False

        async def change(task: Task, activity: Activity | None = None, **kw: Any) -> Task:
            if kw.get("phase") == Phase.POLLING.value and down():
                raise StorageUnavailable("down")
            return await real_change(task, activity, **kw)

        async def get(video_id: str) -> Task | None:
            if down():
                raise StorageUnavailable("still down")
            return await real_get(video_id)

        monkeypatch.setattr(h.storage.tasks, "change", change)
        monkeypatch.setattr(h.storage.tasks, "get", get)
        task = await h.create(prompt="through an outage")
        done = await h.until_terminal(task.video_id)
        assert done.status == "COMPLETED"
        assert h.supervisor.statistics().crashes == 0
        assert outage["left"] == 0


async def test_a_failed_poll_count_write_is_retried_not_fatal(
    sqlite_url: str, autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sora_actors import ledger as ledger_module

    real = ledger_module.record_polls
    failures = {"left": 2}

    async def flaky(database: Any, polls: dict[str, tuple[int, int]]) -> None:
        if failures["left"] > 0:
            failures["left"] -= 1
            raise RuntimeError("database is locked")
        await real(database, polls)

    monkeypatch.setattr(ledger_module, "record_polls", flaky)
    async with running(sqlite_url) as h:
        h.provider.inner.inject_error(
            "get", UpstreamError(ErrorKind.TRANSIENT, "502", status=502), count=3
        )
        task = await h.create(prompt="counted anyway")
        done = await h.until_terminal(task.video_id)
        assert done.status == "COMPLETED"
        assert failures["left"] == 0
        await trio.sleep(h.supervisor.ledger.RETRY_S * 3)
        await h.supervisor.ledger.flush()
        final = await h.storage.tasks.get(task.video_id)
        assert final is not None
        assert final.poll_count == len([n for n, _ in h.provider.calls if n == "get"])


async def test_two_lost_submissions_with_one_prompt_are_not_guessed(
    sqlite_url: str, autojump_clock: trio.testing.MockClock
) -> None:
    """Both creates reached the upstream but neither answer was stored: two jobs match each
    task, so neither task may adopt one (it could be the other user's)."""
    async with running(sqlite_url, config=ActorConfig(submit_settle_s=20)) as h:
        lost = {"left": 2}

        def lose() -> bool:
            if lost["left"] > 0:
                lost["left"] -= 1
                return True
            return False

        h.provider.crash["submit-after"] = lose
        first = await h.create(prompt="a cat")
        second = await h.create(prompt="a cat")
        ended = [await h.until_terminal(t.video_id) for t in (first, second)]
        assert [t.status for t in ended] == ["FAILED", "FAILED"]
        assert {t.error_code for t in ended} == {"SUBMISSION_UNCERTAIN"}
        assert {t.external_video_id for t in ended} == {None}
        assert h.provider.inner.creates == 2


async def test_a_task_waiting_for_a_job_slot_is_sent_at_once_after_a_restart(
    sqlite_url: str, autojump_clock: trio.testing.MockClock
) -> None:
    """The process stops while a task waits for a local job slot (its create never left):
    after the restart it is submitted at once, not after the settle time, and the upstream
    creates exactly one job for it."""
    config = ActorConfig(submit_settle_s=60)
    # Jobs that stay queued: the task holding the slot is polled but never written (no
    # database I/O of its own could let the virtual clock jump to the waiting task's
    # deadline, the only other timer).
    queued = DurationDistribution(queue_min_s=10**6, queue_max_s=10**6)
    engine = Engine(SimulatorConfig(durations=queued, seed=7))  # the upstream outlives us
    async with open_storage(sqlite_url) as storage:
        user = await storage.accounts.create_user("restarts", None, "x", Activity("register"))
        hub = Hub()
        tasks = TaskService(storage, hub)
        lives: list[Recorder] = []  # each life's provider (the last is the current one)
        hub.add_listener(lambda event: lives[-1].note("event"))

        @asynccontextmanager
        async def process(max_jobs: int) -> AsyncIterator[None]:
            """One life of the process: a fresh provider and limiter, the same database and
            upstream."""
            lives.append(Recorder(MemoryProvider(engine=engine, max_concurrent_jobs=max_jobs)))
            supervisor = Supervisor(
                storage=storage,
                provider=lives[-1],  # type: ignore[arg-type]
                tasks=tasks,
                actor_config=config,
            )
            async with trio.open_nursery() as nursery:
                await nursery.start(supervisor.run)
                yield
                nursery.cancel_scope.cancel()  # the process stops

        async def wait_until(condition: Callable[[], bool]) -> None:
            while not condition():
                await lives[-1].changed.wait()

        def calls(name: str) -> list[float]:
            return [t for n, t in lives[-1].calls if n == name]

        def polled_since_second_submit() -> bool:
            submits = calls("submit")
            return len(submits) == 2 and any(t > submits[1] for t in calls("get"))

        # First life: one job slot. The first task takes it; the second waits for it (it
        # has asked to submit, and the other task was polled since: it is parked).
        async with process(max_jobs=1):
            holder, _ = await tasks.accept(user.id, Order("takes the only slot"))
            await wait_until(lambda: len(calls("get")) >= 1)
            waiter, _ = await tasks.accept(user.id, Order("waits for it"))
            await wait_until(polled_since_second_submit)
        stopped = await storage.tasks.get(waiter.video_id)
        assert stopped is not None and stopped.phase == Phase.ACCEPTED  # no intent stored
        assert engine.creates_by_key["memory"] == 1
        # While the process is down the holder is cancelled: the restart runs the waiter alone.
        assert await tasks.cancel_unowned(holder.video_id, Activity("task_cancel", user.id))

        # Second life: the waiter goes out at once (no settle wait, no lookup).
        restarted_at = trio.current_time()
        async with process(max_jobs=1):
            await wait_until(lambda: any(n == "event" for n, _ in lives[-1].calls))
            assert calls("submit") == [restarted_at]
            assert calls("list") == []
        sent = await storage.tasks.get(waiter.video_id)
        assert sent is not None and sent.external_video_id is not None
        assert engine.creates_by_key["memory"] == 2  # one upstream job per task


async def test_a_lost_submission_is_found_with_the_providers_own_model_map(
    sqlite_url: str, autojump_clock: trio.testing.MockClock
) -> None:
    """The create reached the upstream but its answer was lost; the provider sends
    "sora-2-pro" as "sora-2-custom". The restarted actor finds the job by the name the
    provider sent (not the default map's) and adopts it: one upstream job, no resubmission."""
    provider = MemoryProvider(
        SimulatorConfig(durations=FIXED, seed=7), model_map={"sora-2-pro": "sora-2-custom"}
    )
    async with running(sqlite_url, config=ActorConfig(submit_settle_s=20), provider=provider) as h:
        h.provider.crash["submit-after"] = _once()
        task, _ = await h.tasks.accept(h.user_id, Order("a custom model", model="sora-2-pro"))
        done = await h.until_terminal(task.video_id)
        assert done.status == "COMPLETED", done
        assert h.provider.inner.creates == 1
        assert [name for name, _ in h.provider.calls].count("submit") == 1
        assert any(name == "list" for name, _ in h.provider.calls)
        job = await provider.get(done.external_video_id or "")
        assert job.model == "sora-2-custom"
