"""Single-task reads that arrive together (a reconnect storm's snapshots) share one
statement, and each still gets exactly its own task, as fresh as a read of its own."""

from __future__ import annotations

import trio

from sora_actors.hub import Hub
from sora_actors.lifecycle import Phase
from sora_actors.storage import Activity, Storage, Task
from sora_actors.task_service import Order, TaskService


async def test_reads_of_one_tick_share_one_statement(storage: Storage) -> None:
    service = TaskService(storage, Hub())
    user = await storage.accounts.create_user("snap", None, "x", Activity("register"))
    tasks = [(await service.accept(user.id, Order(f"snap {i}")))[0] for i in range(40)]
    wanted = [task.video_id for task in tasks] + ["video_missing", tasks[0].video_id]
    got: dict[int, Task | None] = {}

    async def read(i: int) -> None:
        got[i] = await storage.tasks.get(wanted[i])

    before = storage.tasks.reads.statements
    async with trio.open_nursery() as nursery:
        for i in range(len(wanted)):
            nursery.start_soon(read, i)
    assert storage.tasks.reads.statements == before + 1
    assert [got[i] for i in range(len(tasks))] == tasks
    assert got[len(tasks)] is None
    assert got[len(tasks) + 1] == tasks[0]


async def test_a_read_sees_every_change_committed_before_it(storage: Storage) -> None:
    """Batched or not, no read returns a row older than a change acknowledged before it
    was asked for (a stale cache would fail this)."""
    service = TaskService(storage, Hub())
    user = await storage.accounts.create_user("fresh", None, "x", Activity("register"))
    tasks = [(await service.accept(user.id, Order(f"fresh {i}")))[0] for i in range(10)]
    for step in range(3):
        async with trio.open_nursery() as nursery:
            for task in tasks:
                nursery.start_soon(storage.tasks.get, task.video_id)  # load in flight
            tasks = [
                await service.advance(task, Phase.SUBMITTING if step == 0 else Phase.POLLING, None)
                if step < 2
                else await service.advance(task, Phase.POLLING, None, progress=step)
                for task in tasks
            ]
            seen = [await storage.tasks.get(task.video_id) for task in tasks]
        assert seen == tasks
