"""The hub alone: encode once, indexes, snapshot hold/release, coalescing, overflow."""

from __future__ import annotations

import trio

from sora_actors.hub import (
    DropReason,
    Frames,
    Hub,
    HubStatistics,
    Subscriber,
    SubscriberStatistics,
    TaskEvent,
)

from .factory import make_task


class CountingEncoder:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, event: TaskEvent) -> Frames:
        self.calls += 1
        return (f"{event.task.video_id}:{event.task.seq}:{event.task.status}",)


async def drain(subscriber: Subscriber) -> list[str]:
    """Everything queued, as the connection's sender would take it."""
    out: list[str] = []
    while subscriber.queued:
        with trio.fail_after(1):
            frames = await subscriber.next()
        assert frames is not None
        out.extend(frames)
        subscriber.sent()
    return out


async def test_encoded_once_and_delivered_only_to_subscribers() -> None:
    encoder = CountingEncoder()
    hub = Hub(encoder, queue_size=8)
    a1, a2, a_all, b_all = (hub.connect(name) for name in ("a1", "a2", "a_all", "b_all"))
    for subscriber, user in ((a1, "A"), (a2, "A"), (a_all, "A"), (b_all, "B")):
        hub.authenticate(subscriber, user, 2**62)
    for subscriber in (a1, a2):
        hub.subscribe_task(subscriber, "t1")
        hub.release(subscriber, "t1", 1)
    hub.subscribe_user(a_all)
    hub.subscribe_user(b_all)
    hub.subscribe_task(a_all, "t1")  # by task and by user: still delivered once
    hub.release(a_all, "t1", 1)
    hub.publish(TaskEvent(make_task("t1", "A", seq=2)))
    hub.publish(TaskEvent(make_task("t9", "C", seq=2)))  # nobody listens: not even encoded
    assert encoder.calls == 1
    assert await drain(a1) == await drain(a2) == await drain(a_all) == ["t1:2:PROCESSING"]
    assert b_all.queued == 0


async def test_events_during_the_snapshot_read_are_held_then_filtered_by_seq() -> None:
    hub = Hub(CountingEncoder(), queue_size=8)
    subscriber = hub.connect("c")
    hub.authenticate(subscriber, "A", 2**62)
    hub.subscribe_task(subscriber, "t1")
    for seq in (2, 3, 4):  # published while the snapshot is being read
        hub.publish(TaskEvent(make_task("t1", "A", seq=seq)))
    assert subscriber.queued == 0
    subscriber.send(("snapshot at 3",))
    hub.release(subscriber, "t1", 3)
    hub.publish(TaskEvent(make_task("t1", "A", seq=3)))  # a replay: already covered
    hub.publish(TaskEvent(make_task("t1", "A", seq=5)))
    assert await drain(subscriber) == ["snapshot at 3", "t1:4:PROCESSING", "t1:5:PROCESSING"]


async def test_slow_subscriber_coalesces_progress_keeps_terminals_and_overflows() -> None:
    hub = Hub(CountingEncoder(), queue_size=4)
    subscriber = hub.connect("slow")
    hub.authenticate(subscriber, "A", 2**62)
    hub.subscribe_user(subscriber)
    for seq in range(2, 100):
        hub.publish(TaskEvent(make_task("t1", "A", seq=seq)))
    assert subscriber.statistics() == SubscriberStatistics(queued=4, high_water=4, coalesced=94)
    hub.publish(TaskEvent(make_task("t1", "A", seq=100, status="COMPLETED")))
    frames = await drain(subscriber)
    assert frames[-1] == "t1:100:COMPLETED"
    assert frames[-2] != "t1:99:PROCESSING"  # superseded by the terminal event
    # Terminal events and other tasks' first progress are never coalesced: past twice the
    # bound, the subscriber is closed instead of growing.
    for index in range(9):
        hub.publish(TaskEvent(make_task(f"x{index}", "A", seq=2, status="FAILED")))
    assert subscriber.dropped is DropReason.TOO_SLOW
    assert subscriber.queued == 0 and subscriber not in hub.subscribers()
    stats = hub.statistics()
    assert (stats.connections, stats.dropped, stats.watched_users) == (0, 1, 0)


def test_close_all_closes_present_and_later_connections() -> None:
    hub = Hub(CountingEncoder())
    present = hub.connect("a")
    hub.close_all("the server is shutting down")
    later = hub.connect("b")
    for subscriber in (present, later):
        assert subscriber.closed
        assert (subscriber.dropped, subscriber.drop_message) == (
            DropReason.SHUTTING_DOWN,
            "the server is shutting down",
        )
    # Shutting down is nobody's fault: not counted with the slow and the expired.
    assert hub.statistics() == HubStatistics(0, 0, 0, 0, 0, 0)


async def test_statistics_keep_what_departed_subscribers_coalesced() -> None:
    hub = Hub(CountingEncoder(), queue_size=4)
    subscribers = [hub.connect(name) for name in ("c1", "c2")]
    for subscriber in subscribers:
        hub.authenticate(subscriber, "A", 2**62)
        hub.subscribe_task(subscriber, "t1")
        hub.release(subscriber, "t1", 1)
    for seq in range(2, 8):  # 4 queue, the next 2 replace the last one in each queue
        hub.publish(TaskEvent(make_task("t1", "A", seq=seq)))
    assert hub.statistics() == HubStatistics(
        connections=2, watched_tasks=1, watched_users=0, published=6, coalesced=4, dropped=0
    )
    hub.disconnect(subscribers[0])
    # A counter never goes back when a connection leaves.
    assert hub.statistics() == HubStatistics(
        connections=1, watched_tasks=1, watched_users=0, published=6, coalesced=4, dropped=0
    )


async def test_sweep_drops_the_stuck_and_the_expired(
    autojump_clock: trio.testing.MockClock,
) -> None:
    hub = Hub(CountingEncoder(), queue_size=4, stuck_seconds=10)
    stuck, expired, fine = (hub.connect(name) for name in ("stuck", "expired", "fine"))
    for subscriber in (stuck, fine):
        hub.authenticate(subscriber, "A", 2**62)
    hub.authenticate(expired, "B", 1)  # expired long ago (wall-clock ms)
    stuck.send(("never sent",))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(hub.run)
        await trio.sleep(9.9)
        assert [s.dropped for s in (stuck, expired, fine)] == [None, DropReason.TOKEN_EXPIRED, None]
        await trio.sleep(1.6)  # the sweep at 11 s finds it stalled past 10 s
        assert [s.dropped for s in (stuck, expired, fine)] == [
            DropReason.TOO_SLOW,
            DropReason.TOKEN_EXPIRED,
            None,
        ]
        nursery.cancel_scope.cancel()
    assert hub.statistics().dropped == 2
