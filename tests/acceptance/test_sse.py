"""``/api/sse/task-updates`` over real HTTP streaming, on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx2
import pytest
import trio

from sora_actors.hub import DropReason, TaskEvent
from sora_actors.lifecycle import Phase, Status
from sora_actors.settings import Settings
from tests.conftest import make_settings
from tests.harness import LiveServer, assert_error, live_server
from tests.sseclient import SseEvent, events

PATH = "/api/sse/task-updates"
TERMINAL = ("taskCompleted", "taskFailed", "taskCancelled")


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(
        tmp_path,
        database_url,
        simulator_time_scale=30,
        polling_speedup=20,
        sse_heartbeat_seconds=0.5,
    )


@asynccontextmanager
async def stream(
    server: LiveServer, token: str, last_id: str | None = None, **params: str
) -> AsyncIterator[tuple[httpx2.Response, AsyncIterator[SseEvent]]]:
    headers = {"Last-Event-ID": last_id} if last_id else {}
    async with server.client.stream(
        "GET", PATH, params={"token": token, **params}, headers=headers, timeout=None
    ) as response:
        yield response, events(response)


async def updates_until(
    reader: AsyncIterator[SseEvent], done: Any, timeout: float = 60
) -> list[SseEvent]:
    """taskUpdate events up to and including the first ``done`` accepts (comments skipped)."""
    seen: list[SseEvent] = []
    with trio.fail_after(timeout):
        async for item in reader:
            if item.event == "taskUpdate":
                seen.append(item)
                if done(item):
                    return seen
    raise AssertionError(f"the stream ended after {[e.json['seq'] for e in seen]}")


async def updates_before_heartbeat(reader: AsyncIterator[SseEvent]) -> list[SseEvent]:
    """Every taskUpdate queued before the first heartbeat comment."""
    seen: list[SseEvent] = []
    with trio.fail_after(10):
        async for item in reader:
            if item.event == ":" and item.data == "heartbeat":
                return seen
            if item.event == "taskUpdate":
                seen.append(item)
    raise AssertionError("the stream ended")


async def stored(server: LiveServer, video_id: str) -> Any:
    task = await server.services.storage.tasks.get(video_id)
    assert task is not None
    return task


async def test_stream_headers_snapshot_heartbeat_and_auth(server: LiveServer) -> None:
    headers = await server.user("ann")
    token = headers["Authorization"].removeprefix("Bearer ")
    created = await server.client.post(
        "/api/video/tasks", json={"prompt": "a fox", "clientRequestId": "r-1"}, headers=headers
    )
    video_id = created.json()["data"]["videoId"]
    async with stream(server, token) as (response, reader):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-cache"
        assert response.headers["x-accel-buffering"] == "no"
        first = await anext(reader)
        assert first.retry == 2000
        snapshot = await anext(reader)
        assert snapshot.event == "taskUpdate" and snapshot.id
        payload = snapshot.json
        assert payload["videoId"] == video_id and payload["clientRequestId"] == "r-1"
        assert {"externalTaskId", "status", "progress", "seq", "type"} <= payload.keys()
        done = await updates_until(reader, lambda e: e.json["type"] in TERMINAL)
        assert done[-1].json["type"] == "taskCompleted"
        assert done[-1].json["seq"] == (await stored(server, video_id)).seq
        with trio.fail_after(5):  # idle now: a comment every sse_heartbeat_seconds
            comment = await anext(reader)
        assert (comment.event, comment.data) == (":", "heartbeat")
    hub = server.services.runtime.hub
    with trio.fail_after(5):  # the client went away: so does its subscriber
        while any(s.transport == "sse" for s in hub.subscribers()):
            await trio.sleep(0.02)
    # The Authorization header works as well as ?token=, with ?videoId= for one task.
    async with server.client.stream(
        "GET", PATH, params={"videoId": video_id}, headers=headers, timeout=None
    ) as response:
        reader = events(response)
        (only,) = await updates_before_heartbeat(reader)
        assert only.json["type"] == "taskCompleted" and only.json["videoId"] == video_id
    assert_error(await server.client.get(PATH), 401, "AUTH_REQUIRED")
    assert_error(await server.client.get(PATH, params={"token": "nope"}), 401, "INVALID_TOKEN")
    other = await server.user("bob")
    foreign = await server.client.get(PATH, params={"videoId": video_id}, headers=other)
    assert_error(foreign, 404, "TASK_NOT_FOUND")
    bad = await server.client.get(PATH, headers={**headers, "Last-Event-ID": "1.@@@"})
    assert_error(bad, 400, "INVALID_CURSOR")


async def test_reconnect_with_last_event_id_resumes_without_gap_or_duplicate(
    server: LiveServer,
) -> None:
    headers = await server.user("cyd")
    token = headers["Authorization"].removeprefix("Bearer ")
    created = await server.client.post(
        "/api/video/tasks", json={"prompt": "a fox", "duration": 15}, headers=headers
    )
    a = created.json()["data"]["videoId"]
    async with stream(server, token) as (_response, reader):
        first = await updates_until(reader, lambda e: e.json["seq"] >= 3)
    last_id = first[-1].id
    seen_a = first[-1].json["seq"]
    assert [e.json["videoId"] for e in first] == [a] * len(first)
    # While the client is away: A moves on, B is created and cancelled.
    made = await server.client.post("/api/video/tasks", json={"prompt": "b"}, headers=headers)
    b = made.json()["data"]["videoId"]
    await server.client.post(f"/api/video/tasks/{b}/cancel", headers=headers)
    with trio.fail_after(30):
        while (await stored(server, a)).seq <= seen_a:
            await trio.sleep(0.02)
    moved_to = (await stored(server, a)).seq
    async with stream(server, token, last_id) as (_response, reader):
        second = await updates_until(
            reader, lambda e: e.json["videoId"] == a and e.json["type"] in TERMINAL
        )
        last_id = second[-1].id
    a_seqs = [e.json["seq"] for e in second if e.json["videoId"] == a]
    b_events = [e.json for e in second if e.json["videoId"] == b]
    assert a_seqs[0] >= moved_to > seen_a  # nothing A had shown, and its state now
    assert a_seqs == sorted(set(a_seqs))  # no duplicate
    assert a_seqs[-1] == (await stored(server, a)).seq
    assert [(e["type"], e["seq"]) for e in b_events] == [
        ("taskCancelled", (await stored(server, b)).seq)
    ]
    # Resuming once everything is delivered: nothing is sent again.
    async with stream(server, token, last_id) as (_response, reader):
        assert await updates_before_heartbeat(reader) == []
    # A task changed after that: exactly its new state.
    again = await server.client.post("/api/video/tasks", json={"prompt": "c"}, headers=headers)
    c = again.json()["data"]["videoId"]
    await server.client.post(f"/api/video/tasks/{c}/cancel", headers=headers)
    async with stream(server, token, last_id) as (_response, reader):
        replay = await updates_before_heartbeat(reader)
    assert [(e.json["videoId"], e.json["type"]) for e in replay] == [(c, "taskCancelled")]
    # ?videoId= resumes the same way.
    async with stream(server, token, first[0].id, videoId=a) as (_response, reader):
        (one,) = await updates_before_heartbeat(reader)
    assert (one.json["videoId"], one.json["seq"]) == (a, (await stored(server, a)).seq)


async def test_a_slow_consumer_is_dropped_and_resumes(tmp_path: Path, sqlite_url: str) -> None:
    settings = make_settings(tmp_path, sqlite_url, ws_send_queue_size=4, sse_heartbeat_seconds=60)
    async with live_server(settings) as server:
        hub = server.services.runtime.hub
        headers = await server.user("dan")
        token = headers["Authorization"].removeprefix("Bearer ")
        created = await server.client.post(
            "/api/video/tasks", json={"prompt": "x"}, headers=headers
        )
        video_id = created.json()["data"]["videoId"]
        await server.client.post(f"/api/video/tasks/{video_id}/cancel", headers=headers)
        base = await stored(server, video_id)
        async with stream(server, token) as (_response, reader):
            (snapshot,) = await updates_until(reader, lambda e: True)
            (sub,) = [s for s in hub.subscribers() if s.transport == "sse"]
            # Terminal events of 20 other tasks at once: more than twice the queue holds.
            fakes = [
                dataclasses.replace(
                    base,
                    video_id=f"video_{uuid.uuid4()}",
                    status=Status.COMPLETED.value,
                    phase=Phase.COMPLETED.value,
                )
                for _ in range(20)
            ]
            for fake in fakes:
                hub.publish(TaskEvent(fake))
            assert sub.dropped is DropReason.TOO_SLOW and sub not in hub.subscribers()
            rest = [item async for item in reader]  # the stream ends
        assert all(item.event != "taskUpdate" for item in rest)
        assert snapshot.json["videoId"] == video_id
        # The browser comes back with its Last-Event-ID: the fakes are not stored tasks, so
        # the replay holds nothing, and the cancelled task is not sent again.
        async with stream(server, token, snapshot.id) as (_response, reader):
            await server.client.post("/api/video/tasks", json={"prompt": "y"}, headers=headers)
            (fresh,) = await updates_until(reader, lambda e: True)
        assert fresh.json["videoId"] != video_id and fresh.json["status"] == "QUEUED"


async def test_a_stream_ends_when_the_server_stops(tmp_path: Path, sqlite_url: str) -> None:
    settings = make_settings(tmp_path, sqlite_url, sse_heartbeat_seconds=60)
    async with live_server(settings) as server:
        headers = await server.user("eve")
        token = headers["Authorization"].removeprefix("Bearer ")
        async with stream(server, token) as (_response, reader):
            assert (await anext(reader)).retry == 2000
            server.services.runtime.hub.close_all("stopping")
            with trio.fail_after(5):
                rest = [item async for item in reader]
        assert rest == []


async def test_the_stream_is_in_the_api_document(server: LiveServer) -> None:
    document = (await server.client.get("/openapi.json")).json()
    operation = document["paths"][PATH]["get"]
    assert {p["name"] for p in operation["parameters"]} >= {"token", "videoId", "lastEventId"}
    event = operation["responses"]["200"]["content"]["text/event-stream"]["schema"]
    assert set(event["properties"]) == {"event", "data", "id", "retry"}
    assert "INVALID_CURSOR" in operation["responses"]["400"]["x-error-codes"]
    assert "401" in operation["responses"]


async def test_an_idle_stream_outlives_the_keep_alive_deadline(
    tmp_path: Path, sqlite_url: str
) -> None:
    """The listener's keep-alive deadline is for idle connections between requests; a
    stream that is quiet for longer is still a response in progress."""
    settings = make_settings(tmp_path, sqlite_url, keep_alive_seconds=0.5, sse_heartbeat_seconds=60)
    async with live_server(settings) as server:
        headers = await server.user("fay")
        token = headers["Authorization"].removeprefix("Bearer ")
        async with stream(server, token) as (_response, reader):
            assert (await anext(reader)).retry == 2000
            await trio.sleep(2)  # four keep-alive periods without a byte
            made = await server.client.post(
                "/api/video/tasks", json={"prompt": "z"}, headers=headers
            )
            (update,) = await updates_until(reader, lambda e: True, timeout=10)
        assert update.json["videoId"] == made.json()["data"]["videoId"]
