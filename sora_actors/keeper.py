"""The content keeper: copies finished videos from the upstream into our content store.

Why: the upstream's content URL needs our upstream API key (a browser cannot use it, and
must never see it) and the upstream drops the media after a while. So every completed task
has its video and thumbnail copied here before it is announced COMPLETED.

The keeper is the runtime's part: it streams the upstream's media into the store (chunk by
chunk, never the whole video in memory), records size and SHA-256 in the database, restores
a lost copy while the upstream still has it, and runs the retention sweep.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import aclosing, asynccontextmanager

import trio

from .channels import ChannelSet, as_channels
from .clock import wall_ms
from .content_store import CONTENT_TYPES, VARIANTS, ContentStore, content_key
from .storage import (
    ContentRecord,
    Fault,
    Storage,
    StorageFull,
    StorageUnavailable,
    Task,
    classify,
)
from .task_service import TaskService
from .upstream import ContentVariant, ErrorKind, Provider, UpstreamError

log = logging.getLogger("sora_actors.content")


class ContentGone(Exception):
    """No local copy, and the upstream no longer has the media either."""


class ContentStoreFull(StorageFull):
    """No space left in the content store for a download (the upstream still has it)."""


class _KeyedLocks:
    """One lock per task, dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[trio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (trio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users <= 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


class ContentKeeper:
    """Copies media from the upstream into the store, and keeps the database in step."""

    # An unfinished write untouched this long is a crash's leftover (writes touch the file).
    PARTIAL_MAX_AGE_S = 3600.0

    def __init__(
        self,
        store: ContentStore,
        *,
        storage: Storage,
        provider: Provider | ChannelSet,
        tasks: TaskService,
        retention_s: float = 0.0,
        sweep_interval_s: float = 3600.0,
    ) -> None:
        self.store = store
        self._storage = storage
        self._channels = as_channels(provider)
        self._tasks = tasks
        self._retention_s = retention_s
        self._sweep_interval_s = sweep_interval_s
        self._locks = _KeyedLocks()
        # Since when (wall ms) downloads find the store full, until one succeeds again; and
        # the tasks waiting for space: what /health and /metrics report.
        self.full_since: int | None = None
        self.pending_space: set[str] = set()

    # -- copying ------------------------------------------------------------------------

    async def copy(self, task: Task) -> tuple[str, ...]:
        """Make sure every variant is stored; the variants kept. Raises UpstreamError.

        A variant already recorded whose object is in the store with the recorded size is
        not downloaded again, so an actor restarted mid-fetch only fetches what is missing.
        """
        external_id = task.external_video_id
        if external_id is None:
            raise UpstreamError(ErrorKind.NOT_FOUND, "the task has no upstream job")
        async with self._locks.hold(task.video_id):
            kept = await self._copy(task.video_id, external_id, task.channel)
        self.pending_space.discard(task.video_id)
        return kept

    def forget(self, video_id: str) -> None:
        """The task no longer waits here (its actor stopped)."""
        self.pending_space.discard(video_id)

    async def _copy(self, video_id: str, external_id: str, channel: str | None) -> tuple[str, ...]:
        records = await self._storage.content.records(video_id)
        kept: list[str] = []
        for variant in VARIANTS:
            record = records.get(variant)
            if record is not None and await self.store.size(record.storage_key) == (
                record.size_bytes
            ):
                kept.append(variant)
                continue
            try:
                await self._download(video_id, external_id, variant, channel)
            except UpstreamError as error:
                optional = variant != "video"
                if optional and error.kind in (ErrorKind.NOT_FOUND, ErrorKind.INVALID_REQUEST):
                    log.info("task %s: no %s upstream (%s)", video_id, variant, error.message)
                    continue
                raise
            kept.append(variant)
        return tuple(kept)

    async def _download(
        self, video_id: str, external_id: str, variant: ContentVariant, channel: str | None
    ) -> None:
        """Copy one variant from the task's own channel."""
        provider = self._channels.get(channel)
        key = content_key(video_id, variant)
        try:
            async with (
                self.store.writer(key) as writer,
                aclosing(provider.fetch_content(external_id, variant)) as chunks,
            ):
                async for chunk in chunks:
                    await writer.write(chunk)
                stored = await writer.commit()
        except OSError as error:
            if classify(error) is not Fault.FULL:
                raise
            self.pending_space.add(video_id)
            if self.full_since is None:
                self.full_since = wall_ms()
                log.warning("the content store is full (%s): downloads wait for space", error)
            raise ContentStoreFull(f"no space left in the content store: {error}") from error
        if self.full_since is not None:
            self.full_since = None
            log.warning("the content store has space again")
        if stored.size == 0:
            await self.store.delete(key)
            raise UpstreamError(ErrorKind.MALFORMED, f"the upstream sent an empty {variant}")
        await self._storage.content.record(
            ContentRecord(
                video_id=video_id,
                variant=variant,
                storage_key=key,
                content_type=CONTENT_TYPES[variant],
                size_bytes=stored.size,
                sha256=stored.sha256,
                stored_at=wall_ms(),
            )
        )
        log.info("task %s: stored %s (%d bytes)", video_id, variant, stored.size)

    async def present(self, task: Task) -> bool:
        """Whether every variant the task lists is in the store now."""
        variants = task.stored_variants
        if not variants:
            return False
        for variant in variants:
            if await self.store.size(content_key(task.video_id, variant)) is None:
                return False
        return True

    async def ensure(self, task: Task) -> Task:
        """A COMPLETED task with its copy in place, fetching it again if it went missing.

        Raises ContentGone when the upstream no longer has it (the task then says so), and
        UpstreamError when the upstream cannot be asked right now.
        """
        if await self.present(task):
            return task
        try:
            variants = await self.copy(task)
        except ContentStoreFull:
            self.pending_space.discard(task.video_id)  # a reader's request: nothing waits
            raise
        except UpstreamError as error:
            if error.kind is not ErrorKind.NOT_FOUND:
                raise
            await self._tasks.content_expired(task.video_id, "the video's copy is gone")
            raise ContentGone(task.video_id) from error
        restored = await self._tasks.content_restored(task.video_id, variants)
        if restored is None:
            raise ContentGone(task.video_id)
        return restored

    # -- retention ----------------------------------------------------------------------

    async def sweep_once(self) -> int:
        """Remove copies older than the retention period; how many tasks lost theirs."""
        removed = 0
        try:
            await self.store.remove_stale_partials(self.PARTIAL_MAX_AGE_S)
        except OSError as error:
            log.warning("could not clear unfinished writes: %s", error)
        if self._retention_s <= 0:
            return 0
        cutoff = wall_ms() - int(self._retention_s * 1000)
        while True:
            due = await self._storage.content.due_for_removal(cutoff)
            for task in due:
                async with self._locks.hold(task.video_id):
                    # Files first, then the row: a crash in between leaves a row the next
                    # sweep finds again, never a row that outlives its files unnoticed.
                    for variant in VARIANTS:
                        await self.store.delete(content_key(task.video_id, variant))
                    expired = await self._tasks.content_expired(
                        task.video_id, "the video's copy was removed (retention)"
                    )
                if expired is not None:
                    removed += 1
            if len(due) < 500:
                return removed

    async def sweep_forever(self) -> None:
        """The retention loop (in the runtime nursery); a failed round is tried again later."""
        while True:
            try:
                removed = await self.sweep_once()
            except (StorageUnavailable, OSError) as error:
                log.warning("retention sweep failed: %s", error)
            else:
                if removed:
                    log.info("retention: removed %d local copies", removed)
            await trio.sleep(self._sweep_interval_s)
