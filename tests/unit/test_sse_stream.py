"""The SSE stream alone, in virtual time: heartbeats, dedupe by seq, the cursor's encoding."""

from __future__ import annotations

import uuid

import pytest
import trio
import trio.testing

from sora_actors.http.sse import BadCursor, Cursor, Stream, encode_sse
from sora_actors.hub import Hub, TaskEvent

from .factory import make_task


def video() -> str:
    return f"video_{uuid.uuid4()}"


async def test_heartbeats_come_every_interval_only_while_idle(
    autojump_clock: trio.testing.MockClock,
) -> None:
    hub = Hub(queue_size=8)
    hub.add_encoder("sse", encode_sse)
    stream = Stream(hub, Cursor(0), heartbeat_s=15)
    hub.authenticate(stream.sub, "u1", 2**62)
    hub.subscribe_user(stream.sub)
    task_id = video()
    chunks: list[tuple[float, str]] = []

    async def publish_later() -> None:
        await trio.sleep(20)
        hub.publish(TaskEvent(make_task(task_id, "u1", seq=2)))
        hub.publish(TaskEvent(make_task(task_id, "u1", seq=2)))  # a duplicate: not sent

    async with trio.open_nursery() as nursery:
        nursery.start_soon(publish_later)
        body = stream.body()
        async for chunk in body:
            chunks.append((trio.current_time(), chunk.decode()))
            if len(chunks) == 5:
                break
        await body.aclose()
    times = [at for at, _ in chunks]
    assert times == [0, 15, 20, 35, 50]
    kinds = [text.split("\n")[0] for _, text in chunks]
    assert kinds[0] == "retry: 2000"
    assert kinds[1] == kinds[3] == kinds[4] == ": heartbeat"
    assert kinds[2].startswith("id: 1.")
    assert f'"videoId":"{task_id}"' in chunks[2][1]
    assert stream.cursor.seen == {task_id: 2}
    assert stream.sub not in hub.subscribers()  # closing the body leaves the hub


def test_cursor_round_trip_is_compact() -> None:
    ids = [video() for _ in range(10)]
    cursor = Cursor(1_764_000_000_000, {vid: n * 1000 + 1 for n, vid in enumerate(ids)})
    cursor.seen["task-from-elsewhere"] = 3
    text = cursor.encode()
    assert Cursor.decode(text) == cursor
    # 8 bytes of start, then 17 bytes of id and a 1-2 byte seq per task (base64: 4/3).
    assert len(text) <= 2 + (8 + 10 * 19 + 22) * 4 // 3 + 4


@pytest.mark.parametrize(
    "text",
    ["", "2.AAAA", "1.@@@@", "1.AAAA", "1." + "A" * 11 + "B", "1.AAAAAAAAAAAD_w", "x" * 70000],
)
def test_cursors_it_never_issued_are_refused(text: str) -> None:
    with pytest.raises(BadCursor):
        Cursor.decode(text)
