"""The content store, its database records, and the actor's FETCHING phase.

Store tests run on a temporary directory; everything that touches the database runs on
SQLite and PostgreSQL. The actor tests use the in-memory upstream with real (fast) time.
"""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trio

from sora_actors.clock import wall_ms
from sora_actors.content_store import LocalContentStore, content_key
from sora_actors.hub import Hub, TaskEvent
from sora_actors.keeper import ContentKeeper
from sora_actors.lifecycle import ErrorCode
from sora_actors.polling import ScaledSchedule, SteppedSchedule
from sora_actors.storage import Activity, ContentRecord, Storage, Task, open_storage
from sora_actors.supervisor import Supervisor
from sora_actors.task import ActorConfig
from sora_actors.task_service import Order, TaskService
from sora_actors.upstream import ErrorKind, UpstreamError, UpstreamJob
from sora_actors.upstream.fake import DurationDistribution, MemoryProvider, SimulatorConfig
from sora_actors.upstream.fake.media import media_bytes, media_sha256

VIDEO = media_bytes("video")


def partials(root: Path) -> list[Path]:
    return sorted(root.glob("*/.*.part"))


# -- the local store ------------------------------------------------------------------


async def test_a_write_is_invisible_until_committed(tmp_path: Path) -> None:
    store = LocalContentStore(tmp_path / "content")
    key = content_key("video_abc", "video")
    async with store.writer(key) as writer:
        await writer.write(VIDEO[:5000])
        await writer.write(VIDEO[5000:])
        # Everything written, not committed: only a hidden temporary file exists.
        assert await store.size(key) is None
        assert not store.path(key).exists()
        assert len(partials(store.root)) == 1
        stored = await writer.commit()
    assert stored.size == len(VIDEO)
    assert stored.sha256 == media_sha256("video")
    assert await store.size(key) == len(VIDEO)
    assert store.path(key).read_bytes() == VIDEO
    assert partials(store.root) == []


async def test_a_failed_write_leaves_nothing(tmp_path: Path) -> None:
    store = LocalContentStore(tmp_path / "content")
    key = content_key("video_abc", "video")
    with pytest.raises(RuntimeError, match="network"):
        async with store.writer(key) as writer:
            await writer.write(VIDEO[:100])
            raise RuntimeError("network dropped")
    assert await store.size(key) is None
    assert partials(store.root) == []

    # Cancellation (a stopping server) cleans up the same way.
    with trio.move_on_after(0.05):
        async with store.writer(key) as writer:
            await writer.write(VIDEO[:100])
            await trio.sleep_forever()
    assert await store.size(key) is None
    assert partials(store.root) == []


async def test_ranges_are_read_exactly(tmp_path: Path) -> None:
    store = LocalContentStore(tmp_path / "content")
    key = content_key("video_abc", "video")
    async with store.writer(key) as writer:
        await writer.write(VIDEO)
        await writer.commit()
    for start, length in ((0, len(VIDEO)), (100, 1), (4000, 5000), (len(VIDEO) - 7, 7)):
        data = b"".join([chunk async for chunk in store.read(key, start, length)])
        assert data == VIDEO[start : start + length]
    assert await store.delete(key) is True
    assert await store.delete(key) is False
    assert not (store.root / "video_abc").exists()  # the empty folder went too


async def test_keys_cannot_leave_the_store(tmp_path: Path) -> None:
    store = LocalContentStore(tmp_path / "content")
    for bad in ("../etc/passwd", "video_a/../../x.mp4", "/abs/video.mp4", "a/b/c.mp4", "a/.x.part"):
        with pytest.raises(ValueError):
            store.path(bad)
    with pytest.raises(ValueError):
        content_key("video_../x", "video")


async def test_stale_partials_are_removed_and_fresh_ones_kept(tmp_path: Path) -> None:
    store = LocalContentStore(tmp_path / "content")
    folder = store.root / "video_abc"
    folder.mkdir(parents=True)
    stale = folder / ".video.mp4.dead.part"
    fresh = folder / ".video.mp4.live.part"
    stale.write_bytes(VIDEO[:10])
    fresh.write_bytes(VIDEO[:10])
    two_hours_ago = time.time() - 7200
    os.utime(stale, (two_hours_ago, two_hours_ago))
    assert await store.remove_stale_partials(3600) == 1
    assert not stale.exists() and fresh.exists()


# -- database records -------------------------------------------------------------------


async def _user_and_task(storage: Storage, *, status: str = "COMPLETED") -> Task:
    user = await storage.accounts.create_user(
        f"u{uuid.uuid4().hex[:8]}", None, "x", Activity("register")
    )
    task, _ = await TaskService(storage, Hub()).accept(user.id, Order("p"))
    if status == "COMPLETED":
        task = await storage.tasks.change(
            task, phase="COMPLETED", status="COMPLETED", content_stored_at=1000
        )
    return task


async def test_content_records_and_state(storage: Storage) -> None:
    task = await _user_and_task(storage)
    record = ContentRecord(
        task.video_id, "video", content_key(task.video_id, "video"), "video/mp4", 10, "a" * 64, 5
    )
    await storage.content.record(record)
    await storage.content.record(
        ContentRecord(record.video_id, "video", record.storage_key, "video/mp4", 11, "b" * 64, 6)
    )  # a second copy replaces the first record
    records = await storage.content.records(task.video_id)
    assert list(records) == ["video"]
    assert records["video"].size_bytes == 11 and records["video"].sha256 == "b" * 64

    # Retention: only copies stored before the cutoff and still kept are due.
    assert [t.video_id for t in await storage.content.due_for_removal(2000)] == [task.video_id]
    assert await storage.content.due_for_removal(1000) == []
    expired = await storage.content.expire(task.video_id, 3000)
    assert expired is not None and expired.content_expired_at == 3000
    assert expired.seq == task.seq + 1 and expired.stored_variants == ()
    assert await storage.content.expire(task.video_id, 4000) is None  # once only
    assert await storage.content.due_for_removal(10_000) == []

    restored = await storage.content.restore(task.video_id, ("video", "thumbnail"), 5000)
    assert restored is not None
    assert restored.content_expired_at is None and restored.content_stored_at == 5000
    assert restored.stored_variants == ("video", "thumbnail")
    again = await storage.tasks.get(task.video_id)
    assert again == restored


async def test_content_units_leave_unfinished_tasks_alone(storage: Storage) -> None:
    task = await _user_and_task(storage, status="QUEUED")
    assert await storage.content.restore(task.video_id, ("video",), 1) is None
    assert await storage.content.expire(task.video_id, 1) is None
    unchanged = await storage.tasks.get(task.video_id)
    assert unchanged == task


# -- the actor's FETCHING phase -----------------------------------------------------------

QUICK = DurationDistribution(
    queue_min_s=1, queue_max_s=1, run_median_s=4, run_sigma=0, run_min_s=4, run_max_s=4
)


@dataclass
class Rig:
    storage: Storage
    tasks: TaskService
    provider: Any
    keeper: ContentKeeper
    store: LocalContentStore
    events: list[TaskEvent]
    user_id: str

    async def create(self) -> Task:
        task, _ = await self.tasks.accept(self.user_id, Order(f"a fox {uuid.uuid4()}"))
        return task

    async def finish(self, supervisor: Supervisor, task: Task) -> Task:
        supervisor.start(task)
        with trio.fail_after(20):
            while True:
                current = await self.storage.tasks.get(task.video_id)
                assert current is not None
                if current.terminal:
                    return current
                await trio.sleep(0.02)


class ExpireOnCompletion:
    """Upstream whose media expires the moment the job is seen complete."""

    def __init__(self, inner: MemoryProvider) -> None:
        self.inner = inner

    async def get(self, job_id: str) -> UpstreamJob:
        job = await self.inner.get(job_id)
        if job.is_done:
            self.inner.force_expire(job_id)
        return job

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@asynccontextmanager
async def rig(url: str, tmp_path: Path, provider: Any) -> AsyncIterator[tuple[Rig, Supervisor]]:
    async with open_storage(url) as storage:
        user = await storage.accounts.create_user("fetcher", None, "x", Activity("register"))
        hub = Hub()
        events: list[TaskEvent] = []
        hub.add_listener(events.append)
        store = LocalContentStore(tmp_path / "content")
        tasks = TaskService(storage, hub)
        keeper = ContentKeeper(store, storage=storage, provider=provider, tasks=tasks)
        config = ActorConfig(
            policy=ScaledSchedule(SteppedSchedule(), 50),
            content=keeper,
            fetch_backoff_s=0.01,
            fetch_backoff_max_s=0.05,
        )
        supervisor = Supervisor(
            storage=storage, provider=provider, tasks=tasks, actor_config=config
        )
        async with trio.open_nursery() as nursery:
            await nursery.start(supervisor.run)
            yield Rig(storage, tasks, provider, keeper, store, events, user.id), supervisor
            nursery.cancel_scope.cancel()


def memory_upstream() -> MemoryProvider:
    return MemoryProvider(SimulatorConfig(time_scale=20, durations=QUICK, seed=3))


async def test_fetch_retries_transient_failures_then_completes(
    database_url: str, tmp_path: Path
) -> None:
    provider = memory_upstream()
    provider.inject_error("fetch_content", UpstreamError(ErrorKind.TRANSIENT, "502"), count=2)
    provider.inject_error(
        "fetch_content", UpstreamError(ErrorKind.RATE_LIMITED, "429", retry_after_s=0.05)
    )
    async with rig(database_url, tmp_path, provider) as (r, supervisor):
        done = await r.finish(supervisor, await r.create())
        assert done.status == "COMPLETED", done.error_message
        assert done.stored_variants == ("video", "thumbnail")
        records = await r.storage.content.records(done.video_id)
        assert records["video"].sha256 == media_sha256("video")
        assert records["video"].size_bytes == len(VIDEO)
        assert records["thumbnail"].sha256 == media_sha256("thumbnail")
        path = r.store.path(content_key(done.video_id, "video"))
        assert hashlib.sha256(path.read_bytes()).hexdigest() == media_sha256("video")
        retries = [e for e in r.events if e.message and "retrying" in e.message]
        assert len(retries) == 3  # two 502s and one 429, each announced
        assert all(e.task.status == "PROCESSING" for e in retries)
        assert partials(r.store.root) == []


async def test_fetch_of_expired_content_fails_the_task(database_url: str, tmp_path: Path) -> None:
    provider = ExpireOnCompletion(memory_upstream())
    async with rig(database_url, tmp_path, provider) as (r, supervisor):
        done = await r.finish(supervisor, await r.create())
        assert done.status == "FAILED"
        assert done.error_code == ErrorCode.CONTENT_UNAVAILABLE.value
        assert done.content_stored_at is None
        assert await r.storage.content.records(done.video_id) == {}


async def test_a_restarted_fetch_only_downloads_what_is_missing(
    database_url: str, tmp_path: Path
) -> None:
    provider = memory_upstream()
    async with rig(database_url, tmp_path, provider) as (r, supervisor):
        first = await r.finish(supervisor, await r.create())
        assert first.status == "COMPLETED"
        fetched = provider.calls["fetch_content"]
        assert fetched == 2
        # The copy is intact: copying again downloads nothing.
        assert await r.keeper.copy(first) == ("video", "thumbnail")
        assert provider.calls["fetch_content"] == fetched
        # The video went missing: only the video is fetched again.
        r.store.path(content_key(first.video_id, "video")).unlink()
        assert not await r.keeper.present(first)
        restored = await r.keeper.ensure(first)
        assert provider.calls["fetch_content"] == fetched + 1
        assert restored.seq == first.seq + 1 and await r.keeper.present(restored)


async def test_retention_sweep_removes_old_copies(database_url: str, tmp_path: Path) -> None:
    provider = memory_upstream()
    async with rig(database_url, tmp_path, provider) as (r, supervisor):
        done = await r.finish(supervisor, await r.create())
        assert done.status == "COMPLETED"
        keep_all = ContentKeeper(r.store, storage=r.storage, provider=provider, tasks=r.tasks)
        assert await keep_all.sweep_once() == 0  # retention 0: kept forever
        young = ContentKeeper(
            r.store, storage=r.storage, provider=provider, tasks=r.tasks, retention_s=3600
        )
        assert await young.sweep_once() == 0  # stored just now
        assert await r.keeper.present(done)
        await trio.sleep(0.01)
        old = ContentKeeper(
            r.store, storage=r.storage, provider=provider, tasks=r.tasks, retention_s=0.001
        )
        before = wall_ms()
        assert await old.sweep_once() == 1
        swept = await r.storage.tasks.get(done.video_id)
        assert swept is not None and swept.status == "COMPLETED"
        assert swept.content_expired_at is not None and swept.content_expired_at >= before
        assert swept.stored_variants == ()
        assert not r.store.path(content_key(done.video_id, "video")).exists()
        assert not r.store.path(content_key(done.video_id, "thumbnail")).exists()
        assert await old.sweep_once() == 0
