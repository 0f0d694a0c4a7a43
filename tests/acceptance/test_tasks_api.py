"""The task REST API against a real server and its in-process simulator, on both databases."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
import trio

from sora_actors.settings import Settings
from tests.conftest import make_settings
from tests.harness import LiveServer, assert_error, live_server

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
GIF = b"GIF89a" + b"\x00" * 64


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(tmp_path, database_url, simulator_time_scale=60, polling_speedup=20)


async def wait_for_status(
    server: LiveServer, headers: dict[str, str], video_id: str, statuses: set[str]
) -> dict[str, Any]:
    with trio.fail_after(60):
        while True:
            response = await server.client.get(f"/api/video/tasks/{video_id}", headers=headers)
            task: dict[str, Any] = response.json()["data"]
            if task["status"] in statuses:
                return task
            await trio.sleep(0.1)


async def test_create_follow_and_complete(server: LiveServer) -> None:
    headers = await server.user("ann")
    created = await server.client.post(
        "/api/video/tasks",
        json={"prompt": "a red fox in snow", "model": "sora_video2", "duration": 10},
        headers=headers,
    )
    assert created.status_code == 201, created.text
    task = created.json()["data"]
    assert task["status"] == "QUEUED" and task["progress"] == 0
    assert task["videoId"].startswith("video_") and task["externalVideoId"] is None
    assert task["model"] == "sora_video2" and task["duration"] == 10
    for key in [
        "videoId",
        "externalVideoId",
        "status",
        "progress",
        "prompt",
        "model",
        "size",
        "duration",
        "mediaType",
        "videoUrl",
        "thumbnailUrl",
        "errorCode",
        "errorMessage",
        "pollCount",
        "lastPollTime",
        "createdAt",
        "updatedAt",
        "startedAt",
        "completedAt",
        "remixedFromVideoId",
    ]:
        assert key in task
    done = await wait_for_status(server, headers, task["videoId"], {"COMPLETED", "FAILED"})
    assert done["status"] == "COMPLETED", done
    assert done["progress"] == 100
    assert done["externalVideoId"].startswith("video_")
    assert done["pollCount"] >= 1 and done["lastPollTime"].endswith("Z")
    assert done["completedAt"] and done["startedAt"]
    stats = (await server.client.get("/api/video/stats", headers=headers)).json()["data"]
    assert stats == {
        "total": 1,
        "queued": 0,
        "processing": 0,
        "completed": 1,
        "failed": 0,
        "cancelled": 0,
    }


async def test_image_to_video_json_and_multipart(server: LiveServer) -> None:
    headers = await server.user("ben")
    data_url = "data:image/png;base64," + base64.b64encode(PNG).decode()
    as_json = await server.client.post(
        "/api/video/tasks", json={"prompt": "animate", "referenceImage": data_url}, headers=headers
    )
    assert as_json.status_code == 201, as_json.text
    as_form = await server.client.post(
        "/api/video/tasks",
        data={"prompt": "animate too", "model": "sora-2", "size": "1280x720", "seconds": "8"},
        files={"input_reference": ("ref.png", PNG, "image/png")},
        headers=headers,
    )
    assert as_form.status_code == 201, as_form.text
    form_task = as_form.json()["data"]
    assert form_task["size"] == "1280x720" and form_task["duration"] == 8
    for task in (as_json.json()["data"], form_task):
        done = await wait_for_status(server, headers, task["videoId"], {"COMPLETED", "FAILED"})
        assert done["status"] == "COMPLETED"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"prompt": ""}, 400, "VALIDATION_ERROR"),
        ({"prompt": "   "}, 400, "VALIDATION_ERROR"),
        ({"prompt": "x", "model": "dall-e"}, 400, "VALIDATION_ERROR"),
        ({"prompt": "x", "duration": 7}, 400, "VALIDATION_ERROR"),
        ({"prompt": "x", "size": "1x1"}, 400, "VALIDATION_ERROR"),
        ({"prompt": "x" * 4001}, 400, "VALIDATION_ERROR"),
        ({"prompt": "x", "referenceImage": "not a data url"}, 400, "VALIDATION_ERROR"),
        ({"prompt": "x", "referenceImage": "data:image/png;base64,@@@"}, 400, "VALIDATION_ERROR"),
        (
            {
                "prompt": "x",
                "referenceImage": "data:image/gif;base64," + base64.b64encode(GIF).decode(),
            },
            415,
            "UNSUPPORTED_IMAGE_TYPE",
        ),
    ],
)
async def test_bad_create_requests(
    server: LiveServer, body: dict[str, Any], status: int, code: str
) -> None:
    headers = await server.user("cid")
    response = await server.client.post("/api/video/tasks", json=body, headers=headers)
    assert_error(response, status, code)
    listed = (await server.client.get("/api/video/tasks", headers=headers)).json()["data"]
    assert listed["total"] == 0  # nothing was written


async def test_oversized_image_and_wrong_content_type(tmp_path: Path, sqlite_url: str) -> None:
    settings = make_settings(tmp_path, sqlite_url, max_image_bytes=1000)
    async with live_server(settings) as server:
        headers = await server.user("dot")
        big = PNG + b"\x00" * 2000
        response = await server.client.post(
            "/api/video/tasks",
            data={"prompt": "big"},
            files={"input_reference": ("big.png", big, "image/png")},
            headers=headers,
        )
        assert_error(response, 413, "IMAGE_TOO_LARGE")
        as_text = await server.client.post(
            "/api/video/tasks",
            content=b"prompt=x",
            headers={**headers, "Content-Type": "text/plain"},
        )
        assert_error(as_text, 415, "UNSUPPORTED_MEDIA_TYPE")
        unauthenticated = await server.client.post("/api/video/tasks", json={"prompt": "x"})
        assert_error(unauthenticated, 401, "AUTH_REQUIRED")


async def test_idempotency_key(server: LiveServer) -> None:
    headers = await server.user("eve")
    keyed = {**headers, "Idempotency-Key": "order-42"}
    first = await server.client.post("/api/video/tasks", json={"prompt": "once"}, headers=keyed)
    again = await server.client.post("/api/video/tasks", json={"prompt": "once"}, headers=keyed)
    assert first.status_code == 201 and again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["data"]["videoId"] == first.json()["data"]["videoId"]
    different = await server.client.post(
        "/api/video/tasks", json={"prompt": "twice"}, headers=keyed
    )
    assert_error(different, 422, "IDEMPOTENCY_KEY_REUSED")
    # The key is per user: another user may use the same one.
    other = {**(await server.user("fay")), "Idempotency-Key": "order-42"}
    theirs = await server.client.post("/api/video/tasks", json={"prompt": "once"}, headers=other)
    assert theirs.json()["data"]["videoId"] != first.json()["data"]["videoId"]
    listed = (await server.client.get("/api/video/tasks", headers=headers)).json()["data"]
    assert listed["total"] == 1


async def test_concurrent_requests_with_one_key_create_one_task(server: LiveServer) -> None:
    headers = {**(await server.user("gus")), "Idempotency-Key": "k1"}
    ids: list[str] = []

    async def post() -> None:
        response = await server.client.post(
            "/api/video/tasks", json={"prompt": "race"}, headers=headers
        )
        assert response.status_code == 201, response.text
        ids.append(response.json()["data"]["videoId"])

    async with trio.open_nursery() as nursery:
        for _ in range(5):
            nursery.start_soon(post)
    assert len(set(ids)) == 1


async def test_other_users_tasks_are_404_everywhere(server: LiveServer) -> None:
    owner = await server.user("hal")
    stranger = await server.user("ida")
    task = (
        await server.client.post("/api/video/tasks", json={"prompt": "mine"}, headers=owner)
    ).json()["data"]
    video_id = task["videoId"]
    assert_error(
        await server.client.get(f"/api/video/tasks/{video_id}", headers=stranger),
        404,
        "TASK_NOT_FOUND",
    )
    assert_error(
        await server.client.post(f"/api/video/tasks/{video_id}/cancel", headers=stranger),
        404,
        "TASK_NOT_FOUND",
    )
    assert_error(
        await server.client.get("/api/video/tasks/video_nope", headers=owner),
        404,
        "TASK_NOT_FOUND",
    )
    listed = (await server.client.get("/api/video/tasks", headers=stranger)).json()["data"]
    assert listed["tasks"] == [] and listed["total"] == 0


async def test_cancel(server: LiveServer) -> None:
    headers = await server.user("jon")
    task = (
        await server.client.post("/api/video/tasks", json={"prompt": "stop me"}, headers=headers)
    ).json()["data"]
    cancelled = await server.client.post(
        f"/api/video/tasks/{task['videoId']}/cancel", headers=headers
    )
    assert cancelled.status_code == 200, cancelled.text
    body = cancelled.json()
    assert body["data"]["status"] == "CANCELLED" and body["message"]
    again = await server.client.post(f"/api/video/tasks/{task['videoId']}/cancel", headers=headers)
    assert_error(again, 409, "TASK_ALREADY_FINISHED")
    await trio.sleep(1)  # it is no longer polled: still cancelled, poll count frozen
    later = await wait_for_status(server, headers, task["videoId"], {"CANCELLED"})
    assert later["pollCount"] == body["data"]["pollCount"]
    stored = await server.services.storage.accounts.activities()
    assert {"generate_video", "task_cancel"} <= {entry["action"] for entry in stored}


async def test_cancel_after_completion_is_409(server: LiveServer) -> None:
    headers = await server.user("kim")
    task = (
        await server.client.post("/api/video/tasks", json={"prompt": "quick"}, headers=headers)
    ).json()["data"]
    await wait_for_status(server, headers, task["videoId"], {"COMPLETED"})
    response = await server.client.post(
        f"/api/video/tasks/{task['videoId']}/cancel", headers=headers
    )
    body = assert_error(response, 409, "TASK_ALREADY_FINISHED")
    assert body["error"]["details"]["status"] == "COMPLETED"


async def test_list_paging_filters_order_and_cursor(server: LiveServer) -> None:
    headers = await server.user("lee")
    ids = []
    for i in range(5):
        response = await server.client.post(
            "/api/video/tasks", json={"prompt": f"task {i}"}, headers=headers
        )
        ids.append(response.json()["data"]["videoId"])
        await trio.sleep(0.005)  # distinct createdAt
    await server.client.post(f"/api/video/tasks/{ids[0]}/cancel", headers=headers)

    page1 = (await server.client.get("/api/video/tasks?page=1&pageSize=2", headers=headers)).json()[
        "data"
    ]
    assert page1["total"] == 5 and page1["page"] == 1 and page1["pageSize"] == 2
    assert [t["videoId"] for t in page1["tasks"]] == ids[::-1][:2]  # newest first
    page3 = (await server.client.get("/api/video/tasks?page=3&pageSize=2", headers=headers)).json()[
        "data"
    ]
    assert [t["videoId"] for t in page3["tasks"]] == [ids[0]]
    ascending = (
        await server.client.get("/api/video/tasks?order=asc&pageSize=5", headers=headers)
    ).json()["data"]
    assert [t["videoId"] for t in ascending["tasks"]] == ids
    cancelled = (
        await server.client.get("/api/video/tasks?status=cancelled", headers=headers)
    ).json()["data"]
    assert [t["videoId"] for t in cancelled["tasks"]] == [ids[0]] and cancelled["total"] == 1

    walked: list[str] = []
    cursor = None
    while True:
        query = "pageSize=2" + (f"&cursor={cursor}" if cursor else "")
        data = (await server.client.get(f"/api/video/tasks?{query}", headers=headers)).json()[
            "data"
        ]
        walked += [t["videoId"] for t in data["tasks"]]
        cursor = data["nextCursor"]
        if cursor is None:
            break
    assert walked == ids[::-1]

    for query, code in (
        ("page=0", "VALIDATION_ERROR"),
        ("pageSize=1000", "VALIDATION_ERROR"),
        ("pageSize=abc", "VALIDATION_ERROR"),
        ("status=DONE", "VALIDATION_ERROR"),
        ("order=sideways", "VALIDATION_ERROR"),
        ("cursor=%%%", "INVALID_CURSOR"),
    ):
        assert_error(
            await server.client.get(f"/api/video/tasks?{query}", headers=headers), 400, code
        )
