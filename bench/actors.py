"""Benchmark (run by hand): N in-flight task actors on the in-memory upstream.

Real schedule (5/10/15 s), real storage (SQLite file by default, or --database-url), the
in-memory upstream with its default 1-3 minute jobs. Prints event-loop lag p50/p99 (a task
sleeping 10 ms and measuring its overshoot), RSS per actor and polls/s sustained.

    python bench/actors.py --actors 1000 --seconds 60
    python bench/actors.py --actors 10000 --seconds 60
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import trio
from measure import percentile, rss_kib, sample_lag

from sora_actors.garbage import collecting
from sora_actors.hub import Hub
from sora_actors.storage import Activity, open_storage
from sora_actors.supervisor import Supervisor
from sora_actors.task import ActorConfig
from sora_actors.task_service import Order, TaskService
from sora_actors.upstream.fake import MemoryProvider, SimulatorConfig


async def main(
    actors: int, seconds: float, settle: float, database_url: str, gc_freeze_seconds: float
) -> None:
    async with open_storage(database_url) as storage:
        user = await storage.accounts.create_user(
            f"bench-{uuid.uuid4().hex[:6]}", None, "x", Activity("register")
        )
        print(f"creating {actors} tasks ...", flush=True)
        service = TaskService(storage, Hub())  # no supervisor yet: accepted, not started
        tasks = []
        for i in range(actors):
            task, _ = await service.accept(user.id, Order(f"bench {i}"))
            tasks.append(task)
        provider = MemoryProvider(SimulatorConfig(seed=1))
        supervisor = Supervisor(
            storage=storage, provider=provider, tasks=service, actor_config=ActorConfig()
        )
        lag: list[float] = []
        stop = trio.Event()
        async with collecting(gc_freeze_seconds, 2.0), trio.open_nursery() as nursery:
            await nursery.start(supervisor.run)
            rss_before = rss_kib()
            for task in tasks:
                supervisor.start(task)
            await trio.sleep(settle)  # let the submissions settle
            rss_after = rss_kib()
            polls_before = provider.calls["get"]
            writes_before = supervisor.ledger.statistics().writes
            started = time.perf_counter()
            nursery.start_soon(sample_lag, lag, stop)
            await trio.sleep(seconds)
            elapsed = time.perf_counter() - started
            polls = provider.calls["get"] - polls_before
            writes = supervisor.ledger.statistics().writes - writes_before
            stop.set()
            running = supervisor.statistics().running
            nursery.cancel_scope.cancel()
    print(f"actors started          {actors}")
    print(f"actors still running    {running}")
    print(f"event-loop lag p50      {percentile(lag, 50) * 1000:8.2f} ms")
    print(f"event-loop lag p99      {percentile(lag, 99) * 1000:8.2f} ms   (target < 20 ms)")
    print(f"event-loop lag max      {max(lag) * 1000:8.2f} ms   ({len(lag)} samples)")
    per_actor_kib = (rss_after - rss_before) / actors
    print(f"RSS per actor           {per_actor_kib:8.2f} KiB  (target < 20 KiB)")
    print(f"polls/s sustained       {polls / elapsed:8.1f}   over {elapsed:.0f} s")
    print(f"poll-ledger writes/s    {writes / elapsed:8.1f}   (group commits of unchanged polls)")
    print(f"mean lag                {statistics.mean(lag) * 1000:8.2f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--actors", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--settle", type=float, default=30, help="seconds before measuring")
    parser.add_argument("--database-url", default="")
    parser.add_argument(
        "--gc-freeze-seconds", type=float, default=0.5, help="as the server's setting (0: off)"
    )
    args = parser.parse_args()
    url = args.database_url or (
        f"sqlite+aiosqlite:///{Path(tempfile.mkdtemp(prefix='sora-bench-')) / 'bench.db'}"
    )
    trio.run(main, args.actors, args.seconds, args.settle, url, args.gc_freeze_seconds)
