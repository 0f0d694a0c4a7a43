"""The task service on SQLite and PostgreSQL: what it stores, what it announces, and that a
write it could not make announces nothing."""

from __future__ import annotations

import json
import uuid

import pytest

from sora_actors.hub import Hub, TaskEvent
from sora_actors.lifecycle import ErrorCode, IllegalTransition, Phase
from sora_actors.storage import Activity, Conflict, StaleTask, Storage, Task
from sora_actors.task_service import Order, TaskService


class Runner:
    """Stands in for the supervisor: records what it was asked to start."""

    owner = "instance-a"

    def __init__(self) -> None:
        self.started: list[str] = []

    def new_lease_until(self) -> int:
        return 123_456

    def start(self, task: Task) -> None:
        self.started.append(task.video_id)


async def service(storage: Storage) -> tuple[TaskService, list[TaskEvent], str]:
    hub = Hub()
    events: list[TaskEvent] = []
    hub.add_listener(events.append)
    user = await storage.accounts.create_user(
        f"u{uuid.uuid4().hex[:8]}", None, "x", Activity("register")
    )
    return TaskService(storage, hub, deadline_s=60), events, user.id


async def test_accept_stores_the_first_state_and_hands_it_to_the_runner(storage: Storage) -> None:
    tasks, events, user_id = await service(storage)
    runner = Runner()
    tasks.run_with(runner)
    image = ("image/png", "ref.png", b"\x89PNG\r\n\x1a\n")
    task, created = await tasks.accept(
        user_id, Order("a fox", "sora-2-pro", "1280x720", 8, image=image), ip="10.0.0.1"
    )
    assert created and runner.started == [task.video_id]
    assert (task.status, task.phase, task.seq) == ("QUEUED", "ACCEPTED", 1)
    assert (task.model, task.size, task.duration) == ("sora-2-pro", "1280x720", 8)
    assert (task.owner, task.lease_expires_at) == ("instance-a", 123_456)
    assert task.deadline_at is not None
    assert abs(task.deadline_at - task.created_at - 60_000) < 1000
    assert await storage.tasks.input_image(task.video_id) == image
    assert await storage.tasks.get(task.video_id) == task
    assert events == []  # a new task is answered by its create, not announced


async def test_an_idempotency_key_replays_the_same_order_and_refuses_another(
    storage: Storage,
) -> None:
    tasks, _, user_id = await service(storage)
    first, created = await tasks.accept(user_id, Order("a fox"), idempotency_key="k")
    again, replayed = await tasks.accept(user_id, Order("a fox"), idempotency_key="k")
    assert created and not replayed and again == first
    with pytest.raises(Conflict):
        await tasks.accept(user_id, Order("a fox", duration=8), idempotency_key="k")


async def test_advance_persists_then_announces_and_a_stale_write_announces_nothing(
    storage: Storage,
) -> None:
    tasks, events, user_id = await service(storage)
    task, _ = await tasks.accept(user_id, Order("a fox"))
    moved = await tasks.advance(task, Phase.SUBMITTING, "submitting", submit_started_at=5)
    assert (moved.phase, moved.seq, moved.submit_started_at) == ("SUBMITTING", 2, 5)
    assert [(e.task, e.message) for e in events] == [(moved, "submitting")]
    with pytest.raises(StaleTask):
        await tasks.advance(task, Phase.SUBMITTING, "from an old copy")  # seq 1 is gone
    with pytest.raises(IllegalTransition):
        await tasks.advance(moved, Phase.COMPLETED, "skipping steps")
    assert len(events) == 1
    assert await storage.tasks.get(task.video_id) == moved


async def test_ending_a_task_no_actor_drives(storage: Storage) -> None:
    tasks, events, user_id = await service(storage)
    task, _ = await tasks.accept(user_id, Order("a fox"))
    outcome = await tasks.cancel_unowned(task.video_id, Activity("task_cancel", user_id))
    assert outcome is not None and outcome.cancelled
    assert (outcome.task.status, outcome.task.seq) == ("CANCELLED", 2)
    assert outcome.task.completed_at is not None
    again = await tasks.fail_unowned(task.video_id, ErrorCode.ACTOR_CRASH_LOOP, "gave up")
    assert again is not None and not again.cancelled and again.task == outcome.task
    assert await tasks.cancel_unowned("video_missing", Activity("task_cancel")) is None
    assert [e.task.status for e in events] == ["CANCELLED"]  # once

    other, _ = await tasks.accept(user_id, Order("another fox"))
    failed = await tasks.fail_unowned(other.video_id, ErrorCode.ACTOR_CRASH_LOOP, "gave up")
    assert failed is not None and failed.cancelled
    assert (failed.task.status, failed.task.error_code) == ("FAILED", "ACTOR_CRASH_LOOP")
    assert (events[-1].task, events[-1].message) == (failed.task, "gave up")
    # Each ending is in the activity log, in the same unit of work, under the task's owner
    # (the supervisor giving up does not know who that is; the service does).
    logged = await storage.accounts.activities(user_id)
    actions = [(entry["action"], json.loads(entry["details"] or "{}")) for entry in logged]
    assert [action for action, _ in actions] == [
        "task_failed",
        "generate_video",
        "task_cancel",
        "generate_video",
        "register",
    ]
    assert actions[0][1] == {
        "videoId": other.video_id,
        "code": "ACTOR_CRASH_LOOP",
        "retryable": True,
    }
    assert actions[1][1] == {
        "videoId": other.video_id,
        "model": "sora-2",
        "size": "720x1280",
        "duration": 4,
        "image": False,
    }


async def test_content_changes_of_a_completed_task_are_announced_once(storage: Storage) -> None:
    tasks, events, user_id = await service(storage)
    task, _ = await tasks.accept(user_id, Order("a fox"))
    # (Straight to COMPLETED through storage: the table's long way round is not the point.)
    done = await storage.tasks.change(task, phase="COMPLETED", status="COMPLETED")
    expired = await tasks.content_expired(done.video_id, "removed")
    assert expired is not None and expired.seq == done.seq + 1
    assert await tasks.content_expired(done.video_id, "removed again") is None
    restored = await tasks.content_restored(done.video_id, ("video",))
    assert restored is not None and restored.stored_variants == ("video",)
    assert [(e.task.seq, e.message) for e in events] == [
        (expired.seq, "removed"),
        (restored.seq, "the video was copied again"),
    ]
