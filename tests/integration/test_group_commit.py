"""Group commit: task changes from many actors share transactions, and nothing about that
is visible to a caller except speed.

SQLite groups the units that queue up while a commit is in flight into one transaction (a
savepoint each); PostgreSQL runs each alone (see postgres_engine.py). The rules below hold
on both: a unit that fails fails alone, a change is published only once committed, and a
crash loses nothing that was acknowledged.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio

from sora_actors.hub import Hub, TaskEvent
from sora_actors.lifecycle import Phase
from sora_actors.storage import Activity, StaleTask, Storage, Task, open_storage
from sora_actors.task_service import Order, TaskService

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def service(storage: Storage) -> AsyncIterator[tuple[TaskService, list[TaskEvent]]]:
    """A task service, and the events its hub published (in order)."""
    hub = Hub()
    published: list[TaskEvent] = []
    hub.add_listener(published.append)
    yield TaskService(storage, hub), published


async def _accepted(storage: Storage, service: TaskService, count: int) -> list[Task]:
    user = await storage.accounts.create_user("grouped", None, "x", Activity("register"))
    return [(await service.accept(user.id, Order(f"group {i}")))[0] for i in range(count)]


async def _all_at_once(calls: list[Any]) -> list[Any]:
    """Start every call in the same scheduler tick; their outcomes (value or exception)."""
    results: list[Any] = [None] * len(calls)

    async def one(i: int) -> None:
        try:
            results[i] = await calls[i]()
        except Exception as error:
            results[i] = error

    async with trio.open_nursery() as nursery:
        for i in range(len(calls)):
            nursery.start_soon(one, i)
    return results


async def test_a_batch_with_one_conflicting_unit_commits_the_others(
    storage: Storage, service: tuple[TaskService, list[TaskEvent]]
) -> None:
    tasks_service, published = service
    tasks = await _accepted(storage, tasks_service, 6)
    committer = storage.database.committer
    batches_before = committer.batches if committer is not None else 0
    # Two changes from the same seq of tasks[0]: exactly one of them may win.
    calls = [
        lambda task=task: tasks_service.advance(task, Phase.SUBMITTING, "submitting")
        for task in tasks
    ]
    calls.append(lambda: tasks_service.advance(tasks[0], Phase.FAILED, "late duplicate"))
    results = await _all_at_once(calls)

    # Trio starts them in no fixed order: either change of tasks[0] may win, never both.
    contenders = [results[0], results[6]]
    winners = [result for result in contenders if isinstance(result, Task)]
    assert len(winners) == 1
    assert any(isinstance(result, StaleTask) for result in contenders)
    assert all(isinstance(result, Task) and result.seq == 2 for result in results[1:6])
    outcomes = [winners[0], *results[1:6]]
    for task, result in zip(tasks, outcomes, strict=True):
        stored = await storage.tasks.get(task.video_id)
        assert stored is not None
        assert (stored.seq, stored.phase) == (2, result.phase)
    assert sorted((event.task.video_id, event.task.phase) for event in published) == sorted(
        (task.video_id, result.phase) for task, result in zip(tasks, outcomes, strict=True)
    )
    if committer is not None:  # SQLite: all seven went through ONE transaction
        assert committer.batches == batches_before + 1


def _refuse_commits_of(dialect: str, video_id: str) -> list[str]:
    """DDL that makes any transaction changing ``video_id`` fail at COMMIT (a deferred
    foreign key that its change breaks): a real commit failure, on either database."""
    tables = [
        "CREATE TABLE gc_parent (id TEXT PRIMARY KEY)",
        "CREATE TABLE gc_guard (ref TEXT REFERENCES gc_parent (id) DEFERRABLE INITIALLY DEFERRED)",
    ]
    if dialect == "sqlite":
        return [
            *tables,
            f"CREATE TRIGGER gc_refuse AFTER UPDATE ON video_tasks WHEN NEW.video_id = "
            f"'{video_id}' BEGIN INSERT INTO gc_guard VALUES ('missing'); END",
        ]
    return [
        *tables,
        "CREATE FUNCTION gc_refuse() RETURNS trigger AS $$ BEGIN "
        "INSERT INTO gc_guard VALUES ('missing'); RETURN NEW; END $$ LANGUAGE plpgsql",
        f"CREATE TRIGGER gc_refuse AFTER UPDATE ON video_tasks FOR EACH ROW WHEN "
        f"(NEW.video_id = '{video_id}') EXECUTE FUNCTION gc_refuse()",
    ]


async def test_a_change_whose_commit_failed_is_never_published_and_fails_alone(
    storage: Storage, service: tuple[TaskService, list[TaskEvent]]
) -> None:
    tasks_service, published = service
    tasks = await _accepted(storage, tasks_service, 5)
    doomed = tasks[2]

    async def install(conn: Any) -> None:
        for statement in _refuse_commits_of(storage.dialect, doomed.video_id):
            await conn.execute(statement)

    await storage.database.run(install)
    calls = [
        lambda task=task: tasks_service.advance(task, Phase.SUBMITTING, "submitting")
        for task in tasks
    ]
    results = await _all_at_once(calls)

    assert not isinstance(results[2], Task)
    assert "FOREIGN KEY" in str(results[2]).upper()
    for i, task in enumerate(tasks):
        stored = await storage.tasks.get(task.video_id)
        assert stored is not None
        if i == 2:
            assert (stored.seq, stored.phase) == (1, Phase.ACCEPTED.value)
        else:
            assert isinstance(results[i], Task)
            assert (stored.seq, stored.phase) == (2, Phase.SUBMITTING.value)
    seqs = {event.task.video_id: event.task.seq for event in published}
    assert doomed.video_id not in seqs
    assert seqs == {task.video_id: 2 for i, task in enumerate(tasks) if i != 2}


# -- a crash in the middle of a batch ----------------------------------------------------

CHILD = """
import sys, trio
from sora_actors.hub import Hub
from sora_actors.lifecycle import Phase
from sora_actors.storage import Activity, open_storage
from sora_actors.task_service import Order, TaskService

async def actor(service, task):
    task = await service.advance(task, Phase.SUBMITTING, None)
    print("ack", task.video_id, task.seq, flush=True)
    task = await service.advance(task, Phase.POLLING, None, external_video_id="x" + task.video_id)
    print("ack", task.video_id, task.seq, flush=True)
    progress = 0
    while True:
        progress += 1
        task = await service.advance(task, Phase.POLLING, None, progress=progress % 100)
        print("ack", task.video_id, task.seq, flush=True)

async def main(url, count):
    async with open_storage(url) as storage:
        user = await storage.accounts.create_user("crash", None, "x", Activity("register"))
        service = TaskService(storage, Hub())
        tasks = [(await service.accept(user.id, Order(f"crash {i}")))[0] for i in range(count)]
        print("ready", flush=True)
        async with trio.open_nursery() as nursery:
            for task in tasks:
                nursery.start_soon(actor, service, task)

trio.run(main, sys.argv[1], int(sys.argv[2]))
"""


def _run_then_kill(database_url: str, actors: int, changes: int) -> dict[str, int]:
    """Run CHILD until its actors acknowledged ``changes`` changes, SIGKILL it; the highest
    seq acknowledged per task."""
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, database_url, str(actors)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    acknowledged: dict[str, int] = {}
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        for count, line in enumerate(child.stdout, 1):
            _, video_id, seq = line.split()
            acknowledged[video_id] = max(acknowledged.get(video_id, 0), int(seq))
            if count >= changes:
                break
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    return acknowledged


async def test_a_crash_mid_batch_loses_nothing_acknowledged(database_url: str) -> None:
    """SIGKILL while 100 actors advance their tasks flat out: every change an actor was
    told is committed (and published) is in the database after the restart."""
    acknowledged = await trio.to_thread.run_sync(_run_then_kill, database_url, 100, 2000)
    assert len(acknowledged) == 100
    async with open_storage(database_url) as storage:
        for video_id, seq in acknowledged.items():
            stored = await storage.tasks.get(video_id)
            assert stored is not None
            assert stored.seq >= seq, (video_id, stored.seq, seq)
