"""The old backend's clients, unchanged: its request names, task fields and event shapes.

Against a real server (and its in-process simulator), on SQLite and PostgreSQL.
"""

from __future__ import annotations

import base64
import time
from pathlib import Path
from typing import Any

import httpx2
import pytest
import trio
from trio_websocket import open_websocket_url

from sora_actors.http import compat
from sora_actors.settings import Settings
from tests.acceptance.journey import FAST
from tests.conftest import make_settings
from tests.harness import LiveServer, assert_error
from tests.wsclient import Session, ws_url

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAIAAAD91JpzAAAAFklEQVR4nGP8z8DAwMDAxMDAwMDAAAANHQEDasKb6QAAAABJRU5ErkJggg=="
)


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(tmp_path, database_url, ws_ping_seconds=0, **FAST)


# (what the old frontend sent, the model, size and duration stored)
MAPPING: list[tuple[dict[str, Any], tuple[str, str, int]]] = [
    ({}, ("sora-2", "720x1280", 4)),
    ({"aspectRatio": "16:9"}, ("sora-2", "1280x720", 4)),
    ({"aspect_ratio": "16:9"}, ("sora-2", "1280x720", 4)),
    ({"aspectRatio": "landscape"}, ("sora-2", "1280x720", 4)),
    ({"aspectRatio": "LANDSCAPE"}, ("sora-2", "1280x720", 4)),
    ({"aspectRatio": "9:16"}, ("sora-2", "720x1280", 4)),
    ({"aspect_ratio": "portrait"}, ("sora-2", "720x1280", 4)),
    ({"aspectRatio": "16:9", "size": "1280x720"}, ("sora-2", "1280x720", 4)),
    ({"aspectRatio": "16:9", "hd": True}, ("sora-2", "1280x720", 4)),  # sora-2 has no HD
    ({"model": "sora-2-pro", "aspectRatio": "16:9", "hd": True}, ("sora-2-pro", "1792x1024", 4)),
    ({"model": "sora-2-pro", "hd": True}, ("sora-2-pro", "1024x1792", 4)),
    ({"model": "sora-2-pro", "hd": False}, ("sora-2-pro", "720x1280", 4)),
    ({"model": "sora_video2-landscape"}, ("sora_video2", "1280x720", 4)),
    ({"model": "sora_video2-portrait"}, ("sora_video2", "720x1280", 4)),
    ({"model": "sora_video2-15s"}, ("sora_video2", "720x1280", 15)),
    ({"model": "sora_video2-landscape-15s"}, ("sora_video2", "1280x720", 15)),
    ({"model": "sora_video2-15s", "duration": 15}, ("sora_video2", "720x1280", 15)),
    ({"model": "sora_video2-pro"}, ("sora-2-pro", "720x1280", 4)),
    ({"model": "sora_video2-pro", "aspectRatio": "16:9"}, ("sora-2-pro", "1280x720", 4)),
    ({"model": "sora-2-pro-landscape"}, ("sora-2-pro", "1280x720", 4)),
    ({"model": "sora-2-pro-portrait-hd"}, ("sora-2-pro", "1024x1792", 4)),
    ({"model": "sora-2-pro-landscape-hd-15s"}, ("sora-2-pro", "1792x1024", 15)),
    ({"model": "sora-2-pro-hd", "hd": False}, ("sora-2-pro", "720x1280", 4)),
    ({"model": "sora-2-pro-10s", "size": "1792x1024"}, ("sora-2-pro", "1792x1024", 10)),
    ({"watermark": False, "n": 1, "duration": 8}, ("sora-2", "720x1280", 8)),
    ({"seconds": 12, "aspectRatio": "16:9"}, ("sora-2", "1280x720", 12)),
]


async def test_request_mapping_table(server: LiveServer) -> None:
    headers = await server.user("ann")
    for fields, (model, size, duration) in MAPPING:
        response = await server.client.post(
            "/api/video/tasks", json={"prompt": "a fox", **fields}, headers=headers
        )
        assert response.status_code == 201, (fields, response.text)
        task = response.json()["data"]
        assert (task["model"], task["size"], task["duration"]) == (model, size, duration), fields
        assert task["aspectRatio"] == ("16:9" if size in ("1280x720", "1792x1024") else "9:16")
        assert task["mediaType"] == "VIDEO"


async def test_the_same_mapping_from_a_multipart_form(server: LiveServer) -> None:
    headers = await server.user("amy")
    form = {
        "prompt": "a fox",
        "model": "sora-2-pro",
        "aspectRatio": "landscape",
        "hd": "true",
        "watermark": "false",
        "n": "1",
        "seconds": "8",
    }
    multipart = {key: (None, value) for key, value in form.items()}
    response = await server.client.post("/api/video/tasks", files=multipart, headers=headers)
    assert response.status_code == 201, response.text
    task = response.json()["data"]
    assert (task["model"], task["size"], task["duration"]) == ("sora-2-pro", "1792x1024", 8)


async def test_contradictions_and_unknown_names_are_refused(server: LiveServer) -> None:
    headers = await server.user("bob")

    async def create(fields: dict[str, Any]) -> httpx2.Response:
        return await server.client.post(
            "/api/video/tasks", json={"prompt": "a fox", **fields}, headers=headers
        )

    for fields, named in [
        ({"size": "720x1280", "aspectRatio": "16:9"}, ["size", "aspectRatio"]),
        ({"model": "sora_video2-portrait", "aspectRatio": "16:9"}, ["model", "aspectRatio"]),
        ({"model": "sora_video2-landscape", "size": "720x1280"}, ["size", "model"]),
        ({"model": "sora_video2-15s", "duration": 10}, ["duration", "model"]),
    ]:
        body = assert_error(await create(fields), 422, "CONFLICTING_FIELDS")
        assert [item["field"] for item in body["error"]["details"]] == named, fields
        for field in named:
            assert field in body["message"]
    body = assert_error(await create({"n": 2}), 400, "VALIDATION_ERROR")
    assert body["error"]["details"] == [
        {"field": "n", "message": "must be 1: one video per request"}
    ]
    body = assert_error(await create({"aspectRatio": "4:3"}), 400, "VALIDATION_ERROR")
    assert body["error"]["details"][0]["field"] == "aspectRatio"
    body = assert_error(await create({"model": "sora_video3-landscape"}), 400, "VALIDATION_ERROR")
    (detail,) = body["error"]["details"]
    assert detail["field"] == "model"
    assert detail["accepted"] == list(compat.ACCEPTED_MODELS)
    for name in ("sora_video2-landscape", "sora_video2-15s", "sora-2-pro-portrait-hd"):
        assert name in detail["accepted"]
    # Several bad fields: every one is listed, and the message names each.
    body = assert_error(
        await create({"n": 3, "hd": "maybe", "size": "1x1"}), 400, "VALIDATION_ERROR"
    )
    fields = sorted(item["field"] for item in body["error"]["details"])
    assert fields == ["hd", "n", "size"]
    for field in fields:
        assert f"{field}: " in body["message"]


async def test_image_to_video_is_media_type_image_with_a_link_to_the_image(
    server: LiveServer,
) -> None:
    headers = await server.user("cyd")
    response = await server.client.post(
        "/api/video/tasks",
        data={"prompt": "make it move", "aspectRatio": "16:9"},
        files={"input_reference": ("ref.png", PNG, "image/png")},
        headers=headers,
    )
    assert response.status_code == 201, response.text
    task = response.json()["data"]
    assert task["mediaType"] == "IMAGE" and task["size"] == "1280x720"
    link = task["referenceImage"]
    assert link.startswith(f"{server.base_url}/files/{task['videoId']}/reference?exp=")
    image = await server.client.get(link)  # no login: the link is the permission
    assert image.status_code == 200
    assert image.headers["content-type"] == "image/png" and image.content == PNG
    forged = await server.client.get(link.replace("sig=", "sig=x"))
    assert_error(forged, 403, "CONTENT_URL_INVALID")
    data_url = "data:image/png;base64," + base64.b64encode(PNG).decode()
    json_body = {"prompt": "again", "referenceImage": data_url}
    again = await server.client.post("/api/video/tasks", json=json_body, headers=headers)
    assert again.json()["data"]["mediaType"] == "IMAGE"
    plain = await server.client.post("/api/video/tasks", json={"prompt": "x"}, headers=headers)
    assert plain.json()["data"]["mediaType"] == "VIDEO"
    assert plain.json()["data"]["referenceImage"] is None


async def test_client_request_id_deduplicates_and_finds_the_task(server: LiveServer) -> None:
    headers = await server.user("dan")
    body = {"prompt": "a fox", "clientRequestId": "page-42"}
    first = await server.client.post("/api/video/tasks", json=body, headers=headers)
    assert first.status_code == 201 and "Idempotent-Replayed" not in first.headers
    task = first.json()["data"]
    assert task["clientRequestId"] == "page-42"
    retry = await server.client.post("/api/video/tasks", json=body, headers=headers)
    assert retry.status_code == 201 and retry.headers["Idempotent-Replayed"] == "true"
    assert retry.json()["data"]["videoId"] == task["videoId"]
    other = await server.client.post(
        "/api/video/tasks", json={**body, "prompt": "a cat"}, headers=headers
    )
    assert_error(other, 422, "IDEMPOTENCY_KEY_REUSED")
    # The header and the body naming the same key are one key; different ones: 422.
    same = await server.client.post(
        "/api/video/tasks", json=body, headers={**headers, "Idempotency-Key": "page-42"}
    )
    assert same.json()["data"]["videoId"] == task["videoId"]
    both = await server.client.post(
        "/api/video/tasks", json=body, headers={**headers, "Idempotency-Key": "page-43"}
    )
    error = assert_error(both, 422, "CONFLICTING_FIELDS")
    assert [d["field"] for d in error["error"]["details"]] == ["Idempotency-Key", "clientRequestId"]
    # Multipart carries it too.
    form = await server.client.post(
        "/api/video/tasks",
        files={"prompt": (None, "form"), "clientRequestId": (None, "form-1")},
        headers=headers,
    )
    assert form.json()["data"]["clientRequestId"] == "form-1"
    # The lookup after a page reload.
    found = await server.client.get(
        "/api/video/tasks", params={"clientRequestId": "page-42"}, headers=headers
    )
    page = found.json()["data"]
    assert page["total"] == 1 and [t["videoId"] for t in page["tasks"]] == [task["videoId"]]
    missing = await server.client.get(
        "/api/video/tasks", params={"clientRequestId": "nope"}, headers=headers
    )
    assert missing.json()["data"]["tasks"] == [] and missing.json()["data"]["total"] == 0
    # Scoped to the user: another user's key finds nothing, and may be reused by them.
    eve = await server.user("eve")
    theirs = await server.client.get(
        "/api/video/tasks", params={"clientRequestId": "page-42"}, headers=eve
    )
    assert theirs.json()["data"]["total"] == 0
    own = await server.client.post("/api/video/tasks", json=body, headers=eve)
    assert own.status_code == 201 and own.json()["data"]["videoId"] != task["videoId"]
    blank = await server.client.post(
        "/api/video/tasks", json={"prompt": "x", "clientRequestId": ""}, headers=headers
    )
    assert assert_error(blank, 400, "VALIDATION_ERROR")["error"]["details"][0]["field"] == (
        "clientRequestId"
    )


async def test_task_json_carries_the_old_names(server: LiveServer) -> None:
    headers = await server.user("fay")
    created = await server.client.post(
        "/api/video/tasks",
        json={"prompt": "a fox", "aspectRatio": "16:9", "clientRequestId": "c-1"},
        headers=headers,
    )
    task = created.json()["data"]
    assert task["externalTaskId"] is None and task["metadata"] == {"externalTaskId": None}
    assert task["aspectRatio"] == "16:9" and task["clientRequestId"] == "c-1"
    assert (task["currentStep"], task["totalSteps"]) == (1, 5)
    with trio.fail_after(30):
        while task["status"] != "COMPLETED":
            await trio.sleep(0.05)
            response = await server.client.get(
                f"/api/video/tasks/{task['videoId']}", headers=headers
            )
            task = response.json()["data"]
    assert task["externalVideoId"].startswith("video_")
    assert task["externalTaskId"] == task["externalVideoId"]
    assert task["metadata"] == {"externalTaskId": task["externalVideoId"]}
    assert task["currentStep"] == 5
    listed = await server.client.get("/api/video/tasks", headers=headers)
    assert listed.json()["data"]["tasks"][0]["externalTaskId"] == task["externalVideoId"]


async def test_events_progress_steps_metrics_in_seconds_and_terminal_after_snapshot(
    server: LiveServer,
) -> None:
    headers = await server.user("gus")
    token = headers["Authorization"].removeprefix("Bearer ")
    created = await server.client.post(
        "/api/video/tasks", json={"prompt": "a fox", "clientRequestId": "g-1"}, headers=headers
    )
    task = created.json()["data"]
    async with open_websocket_url(ws_url(server.base_url)) as connection:
        session = Session(connection)
        assert (await session.auth(token))["type"] == "authSuccess"
        await session.subscribe(task["videoId"])
        seen = await session.recv_until(lambda m: m["type"] == "taskCompleted", timeout=60)
    progress = [m["payload"] for m in seen if m["type"] == "taskProgress"]
    assert progress
    for payload in progress:
        assert payload["totalSteps"] == 5 and payload["currentStep"] in (1, 2, 3, 4)
        assert payload["estimatedTimeRemaining"] is None or payload["estimatedTimeRemaining"] >= 0
        assert payload["externalTaskId"] == payload["externalVideoId"]
        assert payload["clientRequestId"] == "g-1"
    completed = seen[-1]["payload"]
    metrics = completed["metrics"]
    finished = await server.client.get(f"/api/video/tasks/{task['videoId']}", headers=headers)
    stored = finished.json()["data"]
    # Seconds (fractions allowed), not milliseconds: a run of a few seconds here.
    assert 0 < metrics["totalTime"] < 60
    assert metrics["totalTime"] == pytest.approx(metrics["queueTime"] + metrics["processTime"])
    assert completed["seq"] == stored["seq"]
    # Subscribing once it has finished: the snapshot, then its terminal event, same seq.
    async with open_websocket_url(ws_url(server.base_url)) as connection:
        session = Session(connection)
        await session.auth(token)
        _ack, snapshot = await session.subscribe(task["videoId"])
        terminal = await session.recv(timeout=10)
    assert snapshot["payload"]["status"] == "COMPLETED"
    assert terminal["type"] == "taskCompleted"
    assert terminal["payload"]["seq"] == snapshot["payload"]["seq"] == stored["seq"]
    assert terminal["payload"]["result"]["videoUrl"]


async def test_a_cancelled_task_subscribed_later_gets_task_cancelled(server: LiveServer) -> None:
    headers = await server.user("hal")
    token = headers["Authorization"].removeprefix("Bearer ")
    created = await server.client.post(
        "/api/video/tasks", json={"prompt": "a fox", "duration": 15}, headers=headers
    )
    video_id = created.json()["data"]["videoId"]
    cancel = await server.client.post(f"/api/video/tasks/{video_id}/cancel", headers=headers)
    assert cancel.status_code == 200, cancel.text
    async with open_websocket_url(ws_url(server.base_url)) as connection:
        session = Session(connection)
        await session.auth(token)
        _ack, snapshot = await session.subscribe(video_id)
        terminal = await session.recv(timeout=10)
        await session.send("ping")
        after = await session.recv_until(lambda m: m["type"] == "pong")
    assert terminal["type"] == "taskCancelled"
    assert terminal["payload"]["seq"] == snapshot["payload"]["seq"]
    assert [m["type"] for m in after] == ["pong"]  # nothing more for that task


async def test_validation_errors_list_every_bad_field(server: LiveServer) -> None:
    headers = await server.user("ida")
    listed = await server.client.get(
        "/api/video/tasks", params={"status": "DONE", "pageSize": "0"}, headers=headers
    )
    body = assert_error(listed, 400, "VALIDATION_ERROR")
    assert sorted(d["field"] for d in body["error"]["details"]) == ["pageSize", "status"]
    assert "status: " in body["message"] and "pageSize: " in body["message"]
    array = await server.client.post("/api/video/tasks", json=[{"prompt": "x"}], headers=headers)
    body = assert_error(array, 400, "VALIDATION_ERROR")
    assert body["error"]["details"] == [{"field": "body", "message": "must be a JSON object"}]
    two = await server.client.post(
        "/api/video/tasks", json={"prompt": "", "duration": 7}, headers=headers
    )
    body = assert_error(two, 400, "VALIDATION_ERROR")
    assert sorted(d["field"] for d in body["error"]["details"]) == ["duration", "prompt"]
    assert "prompt: " in body["message"] and "duration: " in body["message"]
    register = await server.client.post(
        "/api/auth/register", json={"username": "a", "password": "x"}
    )
    body = assert_error(register, 400, "VALIDATION_ERROR")
    assert sorted(d["field"] for d in body["error"]["details"]) == ["password", "username"]


async def test_cors_preflight_is_204_without_a_body(server: LiveServer) -> None:
    for path in ("/api/video/tasks", "/api/auth/login", "/api/video/tasks/video_x"):
        preflight = await server.client.options(
            path,
            headers={
                "Origin": "null",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type",
            },
        )
        assert preflight.status_code == 204, path
        assert preflight.content == b"" and "content-type" not in preflight.headers
        assert preflight.headers["Access-Control-Allow-Origin"] == "null"
        assert "POST" in preflight.headers["Access-Control-Allow-Methods"]


async def test_tokens_live_seven_days_by_default(server: LiveServer) -> None:
    await server.register("joe")
    before = time.time()
    login = await server.client.post(
        "/api/auth/login", json={"username": "joe", "password": "password-1"}
    )
    expires_s = login.json()["data"]["expiresAt"] / 1000
    assert before + 7 * 86400 - 5 <= expires_s <= time.time() + 7 * 86400 + 5


async def test_the_api_test_page_flow(server: LiveServer) -> None:
    """What the old backend's api-test.html does, in its order and with its fields."""
    health = await server.client.get("/health")
    assert health.status_code == 200 and health.json()["data"]["status"] == "ok"
    registered = await server.client.post(
        "/api/auth/register",
        json={"username": "pageuser", "email": "page@example.com", "password": "secret-1"},
    )
    assert registered.status_code == 201 and registered.json()["success"] is True
    login = await server.client.post(
        "/api/auth/login", json={"username": "pageuser", "password": "secret-1"}
    )
    token = login.json()["data"]["token"]
    headers = {"Authorization": f"Bearer {token}"}
    me = await server.client.get("/api/auth/me", headers=headers)
    assert me.json()["data"]["username"] == "pageuser"
    created = await server.client.post(
        "/api/video/tasks",
        json={
            "prompt": "a cat surfing",
            "model": "sora_video2-landscape",
            "aspectRatio": "16:9",
            "hd": False,
            "watermark": False,
            "n": 1,
            "clientRequestId": "api-test-1",
        },
        headers=headers,
    )
    assert created.status_code == 201, created.text
    video_id = created.json()["data"]["videoId"]
    with trio.fail_after(30):
        while True:
            query = await server.client.get(f"/api/video/tasks/{video_id}", headers=headers)
            task = query.json()["data"]
            if task["status"] == "COMPLETED":
                break
            await trio.sleep(0.05)
    assert task["size"] == "1280x720" and task["videoUrl"]
    listed = await server.client.get(
        "/api/video/tasks", params={"page": 1, "pageSize": 10}, headers=headers
    )
    assert [t["videoId"] for t in listed.json()["data"]["tasks"]] == [video_id]
    stats = await server.client.get("/api/video/stats", headers=headers)
    assert stats.json()["data"]["total"] == 1 and stats.json()["data"]["completed"] == 1


async def test_the_websocket_test_page_flow(server: LiveServer) -> None:
    """What websocket-test.html does: connect, auth, subscribe, progress, completed."""
    headers = await server.user("wspage")
    token = headers["Authorization"].removeprefix("Bearer ")
    async with open_websocket_url(ws_url(server.base_url)) as connection:
        session = Session(connection)
        assert (await session.recv())["type"] == "connected"
        assert (await session.auth(token))["type"] == "authSuccess"
        created = await server.client.post(
            "/api/video/tasks", json={"prompt": "a cat", "aspectRatio": "16:9"}, headers=headers
        )
        video_id = created.json()["data"]["videoId"]
        _ack, snapshot = await session.subscribe(video_id)
        assert snapshot["payload"]["videoId"] == video_id
        seen = await session.recv_until(lambda m: m["type"] == "taskCompleted", timeout=60)
    progress = [m["payload"]["progress"] for m in seen if m["type"] == "taskProgress"]
    assert progress and progress == sorted(progress)
    done = seen[-1]["payload"]
    assert done["videoId"] == video_id and done["result"]["resolution"] == "1280x720"
    assert done["result"]["videoUrl"] and done["metrics"]["totalTime"] > 0
