"""A full content store, in virtual time: the exact retry schedule of a finished video that
finds no room, bounded by the upstream's expiry (the real full disk is in
tests/acceptance/test_disk_full.py).

The store refuses writes with the file system's own ENOSPC; the upstream is the in-memory
one with deterministic jobs; wall-clock readings of the actor follow the virtual clock, so
the upstream's expiry (a wall time) and the retries (Trio sleeps) run on one time line.
"""

from __future__ import annotations

import dataclasses
import errno
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

from sora_actors.backoff import Backoff
from sora_actors.content_store import ContentWriter, LocalContentStore
from sora_actors.http.signing import content_status
from sora_actors.hub import Hub, TaskEvent
from sora_actors.keeper import ContentKeeper
from sora_actors.lifecycle import ErrorCode
from sora_actors.storage import Activity, Storage, Task, open_storage
from sora_actors.supervisor import Supervisor
from sora_actors.task import ActorConfig
from sora_actors.task_service import Order, TaskService
from sora_actors.upstream import UpstreamJob
from sora_actors.upstream.fake import MemoryProvider, SimulatorConfig
from tests.integration.test_actors import FIXED

BASE_WALL_MS = 1_800_000_000_000  # a whole second: expiry times stay exact in float seconds
EXPIRES_AFTER_S = 200
MARGIN_S = 30.0
RETRY = Backoff(5.0, 40.0)


class FullDisk:
    """A content store whose disk is full for the first ``failures`` writes of a video."""

    def __init__(self, inner: LocalContentStore, failures: int) -> None:
        self.inner = inner
        self.failures = failures
        self.video_attempts: list[float] = []

    @asynccontextmanager
    async def writer(self, key: str) -> AsyncIterator[ContentWriter]:
        if key.endswith("/video.mp4"):
            self.video_attempts.append(trio.current_time())
            if len(self.video_attempts) <= self.failures:
                raise OSError(errno.ENOSPC, "No space left on device")
        async with self.inner.writer(key) as writer:
            yield writer

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class ExpiringUpstream:
    """The in-memory upstream, whose finished jobs expire ``EXPIRES_AFTER_S`` after they
    are first seen done (on the virtual wall clock)."""

    def __init__(self, inner: MemoryProvider, clock: VirtualWall) -> None:
        self.inner = inner
        self.clock = clock
        self.done_at: dict[str, float] = {}  # Trio time each job was first seen done

    async def get(self, job_id: str) -> UpstreamJob:
        job = await self.inner.get(job_id)
        if not job.is_done:
            return job
        self.done_at.setdefault(job_id, trio.current_time())
        seen_ms = self.clock.at(self.done_at[job_id])
        return dataclasses.replace(job, expires_at=seen_ms / 1000 + EXPIRES_AFTER_S)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@dataclasses.dataclass
class VirtualWall:
    """Wall-clock milliseconds that advance with Trio's (virtual) clock."""

    origin: float

    def at(self, trio_time: float) -> int:
        return BASE_WALL_MS + round((trio_time - self.origin) * 1000)

    def __call__(self) -> int:
        return self.at(trio.current_time())


@pytest.fixture
def wall(monkeypatch: pytest.MonkeyPatch) -> Iterator[VirtualWall]:
    clock = VirtualWall(0.0)  # its origin is set when the rig starts
    monkeypatch.setattr("sora_actors.task.wall_ms", clock)
    monkeypatch.setattr("sora_actors.task_service.wall_ms", clock)  # it stamps completed_at
    yield clock


@dataclasses.dataclass
class Rig:
    storage: Storage
    tasks: TaskService
    disk: FullDisk
    upstream: ExpiringUpstream
    keeper: ContentKeeper
    supervisor: Supervisor
    events: list[TaskEvent]
    user_id: str
    ended: trio.Event

    async def run_one(self) -> Task:
        task, _ = await self.tasks.accept(self.user_id, Order("a comet over a glacier"))
        # No timer of our own (it would let the virtual clock jump while the actor waits
        # for the database): the terminal event wakes us.
        await self.ended.wait()
        current = await self.storage.tasks.get(task.video_id)
        assert current is not None and current.terminal
        return current


@asynccontextmanager
async def rig(url: str, tmp_path: Path, wall: VirtualWall, failures: int) -> AsyncIterator[Rig]:
    wall.origin = trio.current_time()
    async with open_storage(url) as storage:
        user = await storage.accounts.create_user("spacer", None, "x", Activity("register"))
        hub = Hub()
        events: list[TaskEvent] = []
        ended = trio.Event()

        def listen(event: TaskEvent) -> None:
            events.append(event)
            if event.task.terminal:
                ended.set()

        hub.add_listener(listen)
        disk = FullDisk(LocalContentStore(tmp_path / "content"), failures)
        upstream = ExpiringUpstream(MemoryProvider(SimulatorConfig(durations=FIXED, seed=5)), wall)
        tasks = TaskService(storage, hub)
        keeper = ContentKeeper(disk, storage=storage, provider=upstream, tasks=tasks)  # type: ignore[arg-type]
        config = ActorConfig(content=keeper, space_retry=RETRY, space_expiry_margin_s=MARGIN_S)
        supervisor = Supervisor(
            storage=storage,
            provider=upstream,  # type: ignore[arg-type]
            tasks=tasks,
            actor_config=config,
        )
        async with trio.open_nursery() as nursery:
            await nursery.start(supervisor.run)
            yield Rig(storage, tasks, disk, upstream, keeper, supervisor, events, user.id, ended)
            nursery.cancel_scope.cancel()


async def test_space_retries_follow_the_backoff_until_the_upstream_expires(
    sqlite_url: str, tmp_path: Path, autojump_clock: trio.testing.MockClock, wall: VirtualWall
) -> None:
    """The disk never frees up: retries at +5, +10, +20, +40, +40, +40 s, the last one cut
    short to land 30 s (the margin) before the upstream drops the video; then the task fails
    with CONTENT_UNAVAILABLE, never ACTOR_CRASH_LOOP."""
    async with rig(sqlite_url, tmp_path, wall, failures=1000) as r:
        done = await r.run_one()
        (done_at,) = r.upstream.done_at.values()
        offsets = [t - done_at for t in r.disk.video_attempts]
        assert offsets == [0, 5, 15, 35, 75, 115, 155, 170]
        assert done.status == "FAILED"
        assert done.error_code == ErrorCode.CONTENT_UNAVAILABLE.value
        assert done.completed_at == wall.at(done_at + EXPIRES_AFTER_S - MARGIN_S)
        assert r.supervisor.statistics().crashes == 0
        # Announced once as waiting for space (no event per retry), and not after it ended.
        waiting = [e for e in r.events if e.message == "waiting for space to store the video"]
        assert len(waiting) == 1
        assert content_status(waiting[0].task) == "PENDING_SPACE"
        assert waiting[0].task.content_pending_since == wall.at(done_at)
        assert content_status(done) is None
        assert r.keeper.pending_space == set()  # the actor is gone: nothing waits here


async def test_the_video_is_stored_once_space_returns(
    sqlite_url: str, tmp_path: Path, autojump_clock: trio.testing.MockClock, wall: VirtualWall
) -> None:
    async with rig(sqlite_url, tmp_path, wall, failures=3) as r:
        done = await r.run_one()
        (done_at,) = r.upstream.done_at.values()
        offsets = [t - done_at for t in r.disk.video_attempts]
        assert offsets == [0, 5, 15, 35]
        assert done.status == "COMPLETED", (done.error_code, done.error_message)
        assert done.stored_variants == ("video", "thumbnail")
        assert done.content_pending_since is None
        assert content_status(done) == "STORED"
        assert r.keeper.full_since is None and r.keeper.pending_space == set()
        assert r.supervisor.statistics().crashes == 0
