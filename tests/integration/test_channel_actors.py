"""Actors on several channels, in virtual time, on in-memory upstreams and real SQLite:
a create refused before acceptance moves on to the next channel at once, an ambiguous one
stays where it went, a restarted actor keeps talking to its task's channel, a cancel
cancels upstream, and several keys of one channel are used in turn."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import trio
import trio.testing

from sora_actors.channels import Channel, ChannelInfo, ChannelSet
from sora_actors.hub import Hub, TaskEvent
from sora_actors.lifecycle import Phase
from sora_actors.storage import Activity, Storage, Task, open_storage
from sora_actors.supervisor import Supervisor
from sora_actors.task import ActorConfig
from sora_actors.task_service import Order, TaskService
from sora_actors.upstream import ErrorKind, SubmitRequest, UpstreamError
from sora_actors.upstream.fake import DurationDistribution, MemoryProvider, SimulatorConfig
from sora_actors.upstream.keyring import KeyRing

FIXED = DurationDistribution(
    queue_min_s=10, queue_max_s=10, run_median_s=100, run_sigma=0, run_min_s=100, run_max_s=100
)


def upstream(seed: int) -> MemoryProvider:
    return MemoryProvider(SimulatorConfig(durations=FIXED, seed=seed))


def channels(**providers: tuple[MemoryProvider, int]) -> ChannelSet:
    """Channels by name: (provider, priority)."""
    return ChannelSet(
        Channel(ChannelInfo(name, priority=priority), provider, limiters=(provider.limiter,))
        for name, (provider, priority) in providers.items()
    )


@dataclass
class Run:
    storage: Storage
    tasks: TaskService
    supervisor: Supervisor
    events: list[TaskEvent]
    changed: list[trio.Event]
    user_id: str
    reached: dict[tuple[str, str], float]  # (video id, phase) -> when first reached

    async def create(self, prompt: str) -> Task:
        task, _ = await self.tasks.accept(self.user_id, Order(prompt))
        return task

    async def until(self, condition: Callable[[], bool]) -> None:
        """No timer of our own (it would let the virtual clock jump while an actor waits
        for the database): wake on each event."""
        while not condition():
            await self.changed[0].wait()

    async def ended(self, video_id: str) -> Task:
        await self.until(
            lambda: any(e.task.video_id == video_id and e.task.terminal for e in self.events)
        )
        task = await self.storage.tasks.get(video_id)
        assert task is not None
        return task


@asynccontextmanager
async def running(storage: Storage, user_id: str, upstreams: ChannelSet) -> AsyncIterator[Run]:
    hub = Hub()
    events: list[TaskEvent] = []
    changed = [trio.Event()]
    reached: dict[tuple[str, str], float] = {}

    def listen(event: TaskEvent) -> None:
        events.append(event)
        reached.setdefault((event.task.video_id, event.task.phase), trio.current_time())
        changed[0].set()
        changed[0] = trio.Event()

    hub.add_listener(listen)
    tasks = TaskService(storage, hub)
    supervisor = Supervisor(
        storage=storage,
        provider=upstreams,
        tasks=tasks,
        actor_config=ActorConfig(resubmit_delay_s=5.0, submit_settle_s=20.0),
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(supervisor.run)
        yield Run(storage, tasks, supervisor, events, changed, user_id, reached)
        nursery.cancel_scope.cancel()


@asynccontextmanager
async def opened(url: str) -> AsyncIterator[tuple[Storage, str]]:
    async with open_storage(url) as storage:
        user = await storage.accounts.create_user("chan", None, "x", Activity("register"))
        yield storage, user.id


async def test_a_refused_create_moves_to_the_next_channel_at_once(
    sqlite_url: str, autojump_clock: trio.testing.MockClock
) -> None:
    a, b = upstream(1), upstream(2)
    a.inject_error("submit", UpstreamError(ErrorKind.TRANSIENT, "503 with a body", status=503))
    async with (
        opened(sqlite_url) as (storage, user),
        running(storage, user, channels(a=(a, 2), b=(b, 1))) as run,
    ):
        t0 = trio.current_time()
        task = await run.create("a fox in the snow")
        done = await run.ended(task.video_id)
    assert done.status == "COMPLETED" and done.channel == "b"
    assert (a.calls["submit"], b.calls["submit"]) == (1, 1)
    assert a.engine.stats()["jobs_total"] == 0 and b.engine.stats()["jobs_total"] == 1
    assert a.calls["get"] == 0  # nothing of this task goes to a any more
    submitting = [e for e in run.events if e.task.phase == Phase.SUBMITTING]
    assert [e.task.channel for e in submitting] == ["a", "b"]
    moved = next(e for e in run.events if e.message and "channel a refused" in e.message)
    assert moved.task.phase == Phase.ACCEPTED and moved.task.channel == "a"
    # The move cost no waiting: the task was polling on b at the instant it was created.
    assert run.reached[(task.video_id, Phase.POLLING)] == t0


async def test_an_ambiguous_create_stays_with_its_channel(
    sqlite_url: str, autojump_clock: trio.testing.MockClock
) -> None:
    a, b = upstream(1), upstream(2)
    lost = UpstreamError(ErrorKind.AMBIGUOUS_CREATE, "connection dropped after sending")
    a.inject_error("submit", lost, after=True)  # the job exists; its answer was lost
    async with (
        opened(sqlite_url) as (storage, user),
        running(storage, user, channels(a=(a, 2), b=(b, 1))) as run,
    ):
        task = await run.create("a heron at dawn")
        done = await run.ended(task.video_id)
    assert done.status == "COMPLETED" and done.channel == "a"
    assert a.engine.stats()["jobs_total"] == 1 and b.calls["submit"] == 0
    assert done.external_video_id in a.engine.jobs
    assert any(e.message and e.message.startswith("recovered") for e in run.events)


async def test_a_restarted_actor_keeps_its_tasks_channel(
    sqlite_url: str, autojump_clock: trio.testing.MockClock
) -> None:
    a, b = upstream(1), upstream(2)
    async with opened(sqlite_url) as (storage, user):
        down = channels(a=(a, 2), b=(b, 1))
        down.channels["a"].disabled_reason = "401 (test)"
        async with running(storage, user, down) as run:
            task = await run.create("a lighthouse in a storm")
            await run.until(lambda: any(e.task.progress > 0 for e in run.events))
        polling = await storage.tasks.get(task.video_id)
        assert polling is not None and polling.channel == "b" and polling.phase == Phase.POLLING
        polls_before = b.calls["get"]
        # A new process: a is healthy and preferred again, yet the task stays on b.
        async with running(storage, user, channels(a=(a, 2), b=(b, 1))) as run:
            done = await run.ended(task.video_id)
            fresh = await run.create("a new task goes to a")
            await run.ended(fresh.video_id)
    assert done.status == "COMPLETED" and done.channel == "b"
    assert b.calls["get"] > polls_before and b.calls["fetch_content"] == 0
    assert a.calls["get"] > 0 and all(job.prompt != task.prompt for job in a.engine.jobs.values())
    assert a.calls["submit"] == 1


async def test_a_cancel_cancels_the_job_upstream(
    sqlite_url: str, autojump_clock: trio.testing.MockClock
) -> None:
    a = upstream(1)
    async with (
        opened(sqlite_url) as (storage, user),
        running(storage, user, channels(a=(a, 1))) as run,
    ):
        task = await run.create("never mind")
        await run.until(lambda: any(e.task.progress > 0 for e in run.events))
        outcome = await run.supervisor.cancel(task.video_id, Activity("task_cancel", user))
        assert outcome is not None and outcome.cancelled
    job_id = outcome.task.external_video_id
    assert job_id is not None
    assert a.engine.state(a.engine.jobs[job_id]).status == "cancelled"
    assert a.calls["cancel"] == 1 and a.engine.stats()["cancels"] == 1


async def test_keys_are_used_in_turn_and_each_job_stays_with_its_key(
    autojump_clock: trio.testing.MockClock,
) -> None:
    shared = upstream(3).engine
    keys = [MemoryProvider(engine=shared, api_key=f"key-{i}") for i in range(3)]
    ring = KeyRing(keys, [p.limiter for p in keys])
    jobs = [await ring.submit(SubmitRequest(prompt=f"p{i}")) for i in range(6)]
    assert [shared.jobs[j.id].key for j in jobs] == ["key-0", "key-1", "key-2"] * 2
    for job in jobs:
        await ring.get(job.id)
    assert [p.calls["get"] for p in keys] == [2, 2, 2]  # each poll went to its own key
    # After a restart nothing is remembered: keys are asked in turn until one knows it.
    fresh = KeyRing(keys, [p.limiter for p in keys])
    await fresh.get(jobs[2].id)  # made by key-2
    assert [p.calls["get"] for p in keys] == [3, 3, 3]
    await fresh.get(jobs[2].id)
    assert [p.calls["get"] for p in keys] == [3, 3, 4]  # remembered now
    try:
        await fresh.get("video_unknown")
    except UpstreamError as error:
        assert error.kind is ErrorKind.NOT_FOUND
    else:
        raise AssertionError("an unknown job was found")
    found = await fresh.find_jobs(SubmitRequest(prompt="p4"))
    assert [j.id for j in found] == [jobs[4].id]


async def test_a_remix_stays_on_its_sources_channel_even_when_refused(
    sqlite_url: str, autojump_clock: trio.testing.MockClock
) -> None:
    a, b = upstream(1), upstream(2)
    async with (
        opened(sqlite_url) as (storage, user),
        running(storage, user, channels(a=(a, 1), b=(b, 1))) as run,
    ):
        source = await run.create("the original")
        done = await run.ended(source.video_id)
        home = a if done.channel == "a" else b
        home.inject_error("remix", UpstreamError(ErrorKind.TRANSIENT, "503 with a body"))
        t0 = trio.current_time()
        remix, _ = await run.tasks.accept(user, Order("now at night", remixed_from=source.video_id))
        remixed = await run.ended(remix.video_id)
    assert remixed.status == "COMPLETED" and remixed.channel == done.channel
    assert home.calls["remix"] == 2 and (a.calls["remix"] + b.calls["remix"]) == 2
    # Refused once: tried again on the same channel after the resubmit delay.
    assert run.reached[(remix.video_id, Phase.POLLING)] == t0 + 5.0
