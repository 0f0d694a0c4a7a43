"""A real EventSource in Chromium follows a task across a stream cut in the middle of it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio

from sora_actors.http import sse
from sora_actors.hub import DropReason
from sora_actors.settings import Settings
from tests.browser.chromium import require_browser, run_in_browser
from tests.conftest import make_settings
from tests.harness import LiveServer


@pytest.fixture
def settings(tmp_path: Path, sqlite_url: str) -> Settings:
    # Slow enough that the task is still running when the browser comes back (2 s later).
    return make_settings(tmp_path, sqlite_url, simulator_time_scale=3, polling_speedup=10)


async def test_eventsource_reconnects_mid_task_without_gap_or_duplicate(
    server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_browser()
    resumed: list[sse.Cursor] = []
    decode = sse.Cursor.decode.__func__  # type: ignore[attr-defined]

    def recording(cls: type[sse.Cursor], text: str) -> sse.Cursor:
        cursor: sse.Cursor = decode(cls, text)
        resumed.append(sse.Cursor(cursor.start, dict(cursor.seen)))  # the stream updates its own
        return cursor

    monkeypatch.setattr(sse.Cursor, "decode", classmethod(recording))
    headers = await server.user("ann")
    token = headers["Authorization"].removeprefix("Bearer ")
    created = await server.client.post(
        "/api/video/tasks", json={"prompt": "a fox", "duration": 15}, headers=headers
    )
    video_id = created.json()["data"]["videoId"]
    hub = server.services.runtime.hub
    seen: dict[str, Any] = {}
    cut_at: list[int] = []

    async def browse() -> None:
        shot = server.services.settings.data_dir.parent / "sse-browser.png"
        seen.update(
            await run_in_browser(
                "sse_follow", server.base_url, shot, token=token, video_id=video_id
            )
        )

    async def cut_once() -> None:
        with trio.fail_after(60):
            while True:
                task = await server.services.storage.tasks.get(video_id)
                assert task is not None and not task.terminal, task
                streams = [s for s in hub.subscribers() if s.transport == "sse"]
                if streams:
                    break
                await trio.sleep(0.02)
            # Let the page have its snapshot and a change or two.
            first_seq = task.seq
            while task.seq < first_seq + 1:
                await trio.sleep(0.02)
                task = await server.services.storage.tasks.get(video_id)
                assert task is not None and not task.terminal, task
            await trio.sleep(0.3)
        cut_at.append(task.seq)
        streams[0].drop(DropReason.TOO_SLOW, "cut by the test")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(browse)
        nursery.start_soon(cut_once)

    final = await server.services.storage.tasks.get(video_id)
    assert final is not None and final.status == "COMPLETED"
    events = [e for e in seen["events"] if e["videoId"] == video_id]
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(set(seqs)), seqs  # no duplicate, in order
    assert seqs[-1] == final.seq and events[-1]["type"] == "taskCompleted"
    assert seen["opens"] == 2  # one reconnection, made by the browser itself
    before = [e for e in events if e["opens"] == 1]
    after = [e for e in events if e["opens"] == 2]
    assert before and after
    # The browser sent the id of the last event it had; the server resumed from it.
    (cursor,) = resumed
    assert cursor.seen == {video_id: before[-1]["seq"]}
    assert before[-1]["lastEventId"]
    # It came back while the task was still running: the rest arrived live.
    assert after[0]["seq"] > before[-1]["seq"] and after[0]["type"] != "taskCompleted"
    assert cut_at[0] <= after[0]["seq"]
