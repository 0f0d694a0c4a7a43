"""Benchmark (run by hand): the storage path alone, in one process, no HTTP.

- reads: ``tasks.get`` and ``accounts.by_id`` one after the other (what GET task and GET me
  read), wall and CPU microseconds per call (CPU counts every thread of the process, so
  the driver's thread is in it; on a shared machine CPU per call is the steadier figure);
- transitions: ``--actors`` tasks each advanced through the task service flat out
  (ACCEPTED -> SUBMITTING -> POLLING, then POLLING with progress) for ``--seconds``:
  committed transitions per second.

    python bench/storage_ops.py [--reads 3000] [--actors 10000] [--seconds 10]
                                [--database-url URL]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from pathlib import Path

import trio

from sora_actors.hub import Hub
from sora_actors.lifecycle import Phase
from sora_actors.storage import Activity, Storage, Task, open_storage
from sora_actors.task_service import Order, TaskService


async def time_reads(storage: Storage, task: Task, count: int) -> None:
    for name, call in (
        ("tasks.get", lambda: storage.tasks.get(task.video_id)),
        ("accounts.by_id", lambda: storage.accounts.by_id(task.user_id)),
    ):
        for _ in range(100):  # warm up
            await call()
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(count):
            await call()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        print(
            f"{name:<24}{wall / count * 1e6:9.0f} us wall{cpu / count * 1e6:9.0f} us CPU per call"
        )


async def time_transitions(service: TaskService, tasks: list[Task], seconds: float) -> None:
    committed = 0
    stop = trio.Event()

    async def actor(task: Task) -> None:
        nonlocal committed
        task = await service.advance(task, Phase.SUBMITTING, None)
        task = await service.advance(task, Phase.POLLING, None, external_video_id=task.video_id)
        committed += 2
        progress = 0
        while not stop.is_set():
            progress = progress % 99 + 1
            task = await service.advance(task, Phase.POLLING, None, progress=progress)
            committed += 1

    wall, cpu = time.perf_counter(), time.process_time()
    async with trio.open_nursery() as nursery:
        for task in tasks:
            nursery.start_soon(actor, task)
        await trio.sleep(seconds)
        stop.set()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(
        f"{'transitions':<24}{committed / wall:9.0f} committed/s  ({len(tasks)} actors, "
        f"{committed} in {wall:.1f} s, {cpu / max(committed, 1) * 1e6:.0f} us CPU each)"
    )


async def main(url: str, reads: int, actors: int, seconds: float) -> None:
    async with open_storage(url) as storage:
        user = await storage.accounts.create_user(
            f"ops-{uuid.uuid4().hex[:6]}", None, "x", Activity("register")
        )
        service = TaskService(storage, Hub())
        first, _ = await service.accept(user.id, Order("reads"))
        await time_reads(storage, first, reads)
        print(f"creating {actors} tasks ...", flush=True)
        tasks = [(await service.accept(user.id, Order(f"ops {i}")))[0] for i in range(actors)]
        committer = getattr(storage.database, "committer", None)  # None: no group commit
        before = (committer.batches, committer.units) if committer else (0, 0)
        await time_transitions(service, tasks, seconds)
        if committer:
            batches, units = committer.batches - before[0], committer.units - before[1]
            print(f"{'group commit':<24}{units / max(batches, 1):9.1f} units per transaction")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reads", type=int, default=3000)
    parser.add_argument("--actors", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()
    url = args.database_url or (
        f"sqlite+aiosqlite:///{Path(tempfile.mkdtemp(prefix='sora-ops-')) / 'ops.db'}"
    )
    trio.run(main, url, args.reads, args.actors, args.seconds)
