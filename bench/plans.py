"""Benchmark (run by hand): what plans cost in storage, per call, on one database.

- ``/api/auth/me`` read the account (one read); it now also reads the plan's standing
  (the user's licences and three counts): both are timed, and their ratio printed.
- Task creation without a plan check, and with it (the user's lock, licences, counts).

    python bench/plans.py [--calls 2000] [--tasks 200] [--database-url URL]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import trio

from sora_actors.lifecycle import Phase
from sora_actors.plans import Plans, Wish
from sora_actors.settings import Plan
from sora_actors.storage import Activity, NewTask, open_storage


def new_task(user_id: str) -> NewTask:
    return NewTask(
        video_id=f"video_{uuid.uuid4()}",
        user_id=user_id,
        prompt="p",
        model="sora-2",
        size="720x1280",
        duration=4,
        status="QUEUED",
        phase=Phase.ACCEPTED.value,
    )


async def per_call(calls: int, step: Callable[[], Awaitable[Any]]) -> float:
    """Mean microseconds of ``step``."""
    started = time.perf_counter()
    for _ in range(calls):
        await step()
    return (time.perf_counter() - started) / calls * 1e6


async def main(calls: int, tasks: int, url: str) -> None:
    async with open_storage(url) as storage:
        user = await storage.accounts.create_user("bench", None, "x", Activity("register"))
        activity = Activity("task_create", user.id)
        for _ in range(tasks):  # history the counts have to look at
            await storage.tasks.create(new_task(user.id), activity)
        plans = Plans({"FREE": Plan(max_running=10**9, tasks_per_day=10**9)}, lambda: "FREE")
        gate = plans.gate(Wish("sora-2", "720x1280", 4, image=False))

        account = await per_call(calls, lambda: storage.accounts.by_id(user.id))
        standing = await per_call(calls, lambda: storage.licences.standing(user.id))
        plain = await per_call(
            calls // 4, lambda: storage.tasks.create(new_task(user.id), activity)
        )
        checked = await per_call(
            calls // 4, lambda: storage.tasks.create(new_task(user.id), activity, gate)
        )
    dialect = url.split(":", 1)[0]
    print(f"database {dialect}, {tasks}+ tasks of the user, mean per call")
    print(f"  account read (/me before)         {account:8.0f} us")
    print(f"  plan standing (added to /me)      {standing:8.0f} us  ({standing / account:.2f}x)")
    print(f"  create without plan check         {plain:8.0f} us")
    print(f"  create with plan check            {checked:8.0f} us  ({checked / plain:.2f}x)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        url = args.database_url or f"sqlite+aiosqlite:///{Path(folder) / 'bench.db'}"
        trio.run(main, args.calls, args.tasks, url)
