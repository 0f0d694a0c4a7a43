"""Benchmark (run by hand): process start to all unfinished tasks running again.

Prepares N unfinished tasks in a database (not timed), then starts a fresh Python process
that opens the database and the supervisor, as `serve` does, and reports:
- start -> every actor spawned (the supervisor has resumed them all),
- start -> every actor has made its first upstream call.

    python bench/resume.py --tasks 10000 [--database-url URL]
"""

from __future__ import annotations

import time

PROCESS_START = time.time()

import argparse  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import uuid  # noqa: E402
from pathlib import Path  # noqa: E402

import trio  # noqa: E402

from sora_actors.hub import Hub  # noqa: E402
from sora_actors.storage import Activity, open_storage  # noqa: E402
from sora_actors.supervisor import Supervisor  # noqa: E402
from sora_actors.task import ActorConfig  # noqa: E402
from sora_actors.task_service import Order, TaskService  # noqa: E402
from sora_actors.upstream.fake import MemoryProvider, SimulatorConfig  # noqa: E402


async def prepare(url: str, count: int) -> None:
    async with open_storage(url) as storage:
        user = await storage.accounts.create_user(
            f"resume-{uuid.uuid4().hex[:6]}", None, "x", Activity("register")
        )
        service = TaskService(storage, Hub())  # no supervisor: accepted, left to resume
        for i in range(count):
            await service.accept(user.id, Order(f"resume {i}"))


async def resume(url: str, count: int) -> None:
    async with open_storage(url) as storage:
        provider = MemoryProvider(SimulatorConfig(seed=1))
        supervisor = Supervisor(
            storage=storage,
            provider=provider,
            tasks=TaskService(storage, Hub()),
            actor_config=ActorConfig(),
        )
        async with trio.open_nursery() as nursery:
            resumed = await nursery.start(supervisor.run)
            spawned = time.time() - PROCESS_START
            while provider.calls["submit"] < count:
                await trio.sleep(0.01)
            first_calls = time.time() - PROCESS_START
            nursery.cancel_scope.cancel()
    print(f"tasks resumed                     {resumed}")
    print(f"start -> all actors spawned       {spawned:8.2f} s  (target < 5 s)")
    print(f"start -> all made an upstream call {first_calls:7.2f} s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--database-url", default="")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    url = args.database_url or (
        f"sqlite+aiosqlite:///{Path(tempfile.mkdtemp(prefix='sora-resume-')) / 'resume.db'}"
    )
    if args.child:
        trio.run(resume, url, args.tasks)
    else:
        print(f"preparing {args.tasks} unfinished tasks ...", flush=True)
        trio.run(prepare, url, args.tasks)
        child = [sys.executable, __file__, "--child", "--tasks", str(args.tasks)]
        subprocess.run([*child, "--database-url", url], check=True)
