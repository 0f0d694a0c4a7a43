"""The OpenAI-compatible door over plain HTTP: shapes, errors, paging, and that its videos are
our ordinary tasks (seen by the task API and the WebSocket). SQLite and PostgreSQL.

The official SDKs drive the same routes in test_relay_sdk.py.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import httpx2
import pytest
from trio_websocket import open_websocket_url

from sora_actors.settings import Settings
from tests.conftest import make_settings
from tests.harness import LiveServer, live_server
from tests.wsclient import Session, ws_url

PACE = {"simulator_time_scale": 240, "polling_speedup": 80}
DOORS = ("/api/relay/v1", "/api/relay/sora")
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAIAAAD91JpzAAAAFklEQVR4nGP8z8DAwMDAxMDAwMDAAAANHQEDasKb6QAAAABJRU5ErkJggg=="
)


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(tmp_path, database_url, **PACE)


def openai_error(response: httpx2.Response, status: int, code: str) -> dict[str, Any]:
    """OpenAI's error object, with this status and code; nothing of our envelope."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    assert set(error) == {"message", "type", "param", "code"}, error
    assert error["code"] == code, error
    assert isinstance(error["message"], str) and error["message"]
    return error


async def key_of(server: LiveServer, headers: dict[str, str]) -> dict[str, str]:
    made = await server.client.post("/api/auth/api-keys", json={"name": "t"}, headers=headers)
    return {"Authorization": f"Bearer {made.json()['data']['key']}"}


async def create(
    server: LiveServer, headers: dict[str, str], door: str = DOORS[0], **fields: Any
) -> dict[str, Any]:
    response = await server.client.post(
        f"{door}/videos", json={"prompt": "a quiet harbour", **fields}, headers=headers
    )
    assert response.status_code == 200, response.text
    video: dict[str, Any] = response.json()
    return video


async def creation_order(server: LiveServer, video_ids: list[str]) -> list[str]:
    """The ids in the order the API lists them: by creation time, then id."""
    tasks = [await server.services.storage.tasks.get(video_id) for video_id in video_ids]
    return [task.video_id for task in sorted(tasks, key=lambda t: (t.created_at, t.video_id))]


async def test_a_video_is_an_ordinary_task_at_both_doors_with_a_token_or_a_key(
    server: LiveServer,
) -> None:
    token = await server.user("alice")
    key = await key_of(server, token)
    async with open_websocket_url(ws_url(server.base_url)) as connection:
        session = Session(connection)
        await session.recv()  # connected
        assert (await session.auth(token["Authorization"].split()[1]))["type"] == "authSuccess"
        # All of alice's tasks, from before the door creates one.
        watching = await session.send("subscribe_tasks")
        ack = await session.recv_until(lambda m: m.get("id") == watching)
        assert ack[-1]["type"] == "subscribeTasksSuccess"
        video = await create(server, key, seconds="8", size="1280x720", model="sora-2-pro")
        done = await session.recv_until(
            lambda m: m["type"] == "taskCompleted" and m["payload"]["videoId"] == video["id"],
            timeout=60,
        )
    assert done[-1]["payload"]["status"] == "completed"
    assert video["object"] == "video" and video["id"].startswith("video_")
    assert video["status"] == "queued" and video["progress"] == 0
    assert (video["model"], video["seconds"], video["size"]) == ("sora-2-pro", "8", "1280x720")
    assert video["completed_at"] is None and video["expires_at"] is None
    assert video["error"] is None and video["remixed_from_video_id"] is None

    # Our task API knows it, under the same id, for the same user; and so does the door,
    # at its alias, with the login token.
    ours = await server.client.get(f"/api/video/tasks/{video['id']}", headers=token)
    assert ours.status_code == 200 and ours.json()["data"]["status"] == "COMPLETED"
    assert ours.json()["data"]["duration"] == 8
    for door, headers in ((DOORS[1], token), (DOORS[0], key)):
        again = await server.client.get(f"{door}/videos/{video['id']}", headers=headers)
        assert again.status_code == 200
        finished = again.json()
        assert finished["status"] == "completed" and finished["progress"] == 100
        assert finished["completed_at"] >= finished["created_at"]
        retention = server.services.settings.content_retention_days * 86_400
        assert finished["expires_at"] - finished["completed_at"] == pytest.approx(retention, abs=2)
    created = [
        e
        for e in await server.services.storage.accounts.activities()
        if e["action"] == "generate_video"
    ]
    assert len(created) == 1

    # Someone else's video is not found, through any door.
    bob = await server.user("bob")
    for door in DOORS:
        missing = await server.client.get(f"{door}/videos/{video['id']}", headers=bob)
        openai_error(missing, 404, "task_not_found")


async def test_multipart_with_input_reference_and_json_seconds_as_text(
    server: LiveServer,
) -> None:
    key = await key_of(server, await server.user("alice"))
    response = await server.client.post(
        f"{DOORS[0]}/videos",
        data={"prompt": "animate this", "seconds": "4", "size": "720x1280"},
        files={"input_reference": ("pic.png", PNG, "image/png")},
        headers=key,
    )
    assert response.status_code == 200, response.text
    video = response.json()
    stored = await server.services.storage.tasks.input_image(video["id"])
    assert stored == ("image/png", "pic.png", PNG)
    # JSON: seconds as OpenAI sends it (text), or as a number.
    assert (await create(server, key, seconds="12"))["seconds"] == "12"
    assert (await create(server, key, seconds=4))["seconds"] == "4"


async def test_errors_leave_in_openai_s_shape(server: LiveServer) -> None:
    token = await server.user("alice")
    key = await key_of(server, token)
    door = DOORS[0]
    client = server.client
    error = openai_error(await client.get(f"{door}/videos"), 401, "auth_required")
    assert error["type"] == "authentication_error"
    wrong = {"Authorization": "Bearer sk-sora-nope"}
    openai_error(await client.get(f"{door}/videos", headers=wrong), 401, "invalid_api_key")

    bad = await client.post(f"{door}/videos", json={"prompt": "x", "seconds": "7"}, headers=key)
    error = openai_error(bad, 400, "validation_error")
    assert error["param"] == "seconds" and error["type"] == "invalid_request_error"
    no_prompt = await client.post(f"{door}/videos", json={"model": "sora-2"}, headers=key)
    assert openai_error(no_prompt, 400, "validation_error")["param"] == "prompt"
    png_lie = await client.post(
        f"{door}/videos",
        data={"prompt": "x"},
        files={"input_reference": ("a.png", b"not an image", "image/png")},
        headers=key,
    )
    openai_error(png_lie, 415, "unsupported_image_type")
    not_json = await client.post(f"{door}/videos", content=b"[1]", headers=key)
    openai_error(not_json, 415, "unsupported_media_type")

    video = await create(server, key)
    unready = await client.get(f"{door}/videos/{video['id']}/content", headers=key)
    openai_error(unready, 400, "video_not_ready")
    remix = await client.post(
        f"{door}/videos/{video['id']}/remix", json={"prompt": "again"}, headers=key
    )
    openai_error(remix, 400, "task_not_completed")  # not 409: the SDK would retry that
    variant = await client.get(
        f"{door}/videos/{video['id']}/content", params={"variant": "gif"}, headers=key
    )
    assert openai_error(variant, 400, "invalid_value")["param"] == "variant"
    for query in ({"limit": "0"}, {"limit": "101"}, {"limit": "x"}, {"order": "up"}):
        listed = await client.get(f"{door}/videos", params=query, headers=key)
        assert openai_error(listed, 400, "validation_error")["param"] == next(iter(query))
    listed = await client.get(f"{door}/videos", params={"after": "video_nope"}, headers=key)
    assert openai_error(listed, 400, "invalid_value")["param"] == "after"
    unknown = await client.get(f"{door}/models", headers=key)
    openai_error(unknown, 404, "not_found")
    # Our own API keeps its envelope.
    ours = await client.get("/api/video/tasks/video_nope", headers=key)
    assert ours.json()["success"] is False


async def test_list_pages_by_cursor_both_ways(server: LiveServer) -> None:
    key = await key_of(server, await server.user("alice"))
    made = [(await create(server, key, prompt=f"shot {n}"))["id"] for n in range(5)]
    ids = await creation_order(server, made)

    async def walk(order: str) -> list[list[str]]:
        pages: list[list[str]] = []
        after: str | None = None
        while True:
            params = {"limit": "2", "order": order, **({"after": after} if after else {})}
            response = await server.client.get(f"{DOORS[0]}/videos", params=params, headers=key)
            assert response.status_code == 200, response.text
            page = response.json()
            assert page["object"] == "list"
            data = [video["id"] for video in page["data"]]
            assert (page["first_id"], page["last_id"]) == (data[0], data[-1])
            pages.append(data)
            if not page["has_more"]:
                return pages
            after = page["last_id"]

    assert await walk("asc") == [ids[0:2], ids[2:4], ids[4:5]]
    assert await walk("desc") == [ids[4:2:-1], ids[2:0:-1], ids[0:1]]
    everything = await server.client.get(f"{DOORS[1]}/videos", headers=key)
    assert [video["id"] for video in everything.json()["data"]] == ids[::-1]
    assert everything.json()["has_more"] is False


async def test_a_key_s_creates_count_against_its_user_s_rate_limit(
    tmp_path: Path, sqlite_url: str
) -> None:
    limits = {"rate_limit_create_per_user": 2, "rate_limit_create_per_address": 1000}
    async with live_server(make_settings(tmp_path, sqlite_url, **PACE, **limits)) as server:
        token = await server.user("alice")
        key = await key_of(server, token)
        assert (await server.client.get(f"{DOORS[0]}/videos", headers=key)).status_code == 200
        await create(server, key)
        await create(server, key)
        refused = await server.client.post(
            f"{DOORS[0]}/videos", json={"prompt": "one too many"}, headers=key
        )
        error = openai_error(refused, 429, "rate_limited")
        assert error["type"] == "rate_limit_error" and int(refused.headers["retry-after"]) > 0
        # The same user with a login token: the same budget, already spent.
        ours = await server.client.post("/api/video/tasks", json={"prompt": "x"}, headers=token)
        assert ours.status_code == 429 and ours.json()["error"]["code"] == "RATE_LIMITED"


async def test_delete_at_the_door_then_the_video_is_gone(server: LiveServer) -> None:
    token = await server.user("alice")
    key = await key_of(server, token)
    door = DOORS[0]
    client = server.client
    async with open_websocket_url(ws_url(server.base_url)) as connection:
        session = Session(connection)
        await session.recv()  # connected
        assert (await session.auth(token["Authorization"].split()[1]))["type"] == "authSuccess"
        watching = await session.send("subscribe_tasks")
        await session.recv_until(lambda m: m.get("id") == watching)
        finished = await create(server, key, prompt="a finished one")
        await session.recv_until(
            lambda m: m["type"] == "taskCompleted" and m["payload"]["videoId"] == finished["id"],
            timeout=60,
        )
        running = await create(server, key, prompt="a running one")
        kept = await create(server, key, prompt="a kept one")
        bob = await key_of(server, await server.user("bob"))
        openai_error(
            await client.delete(f"{door}/videos/{running['id']}", headers=bob),
            404,
            "task_not_found",
        )

        for video in (running, finished):
            deleted = await client.delete(f"{DOORS[1]}/videos/{video['id']}", headers=key)
            assert deleted.status_code == 200, deleted.text
            assert deleted.json() == {"id": video["id"], "object": "video.deleted", "deleted": True}
            # Subscribers hear of it last: taskDeleted.
            heard = await session.recv_until(
                lambda m, v=video: m["type"] == "taskDeleted" and m["payload"]["videoId"] == v["id"]
            )
            assert heard[-1]["payload"]["deleted"] is True
    cancelled = await server.services.storage.tasks.get(running["id"])
    assert cancelled is not None and cancelled.status == "CANCELLED"

    video_id = finished["id"]
    gone = (
        client.get(f"{door}/videos/{video_id}", headers=key),
        client.get(f"{door}/videos/{video_id}/content", headers=key),
        client.post(f"{door}/videos/{video_id}/remix", json={"prompt": "x"}, headers=key),
        client.delete(f"{door}/videos/{video_id}", headers=key),
        client.get(f"{door}/videos/{running['id']}", headers=key),
    )
    for call in gone:
        openai_error(await call, 404, "task_not_found")
    listed = (await client.get(f"{door}/videos", headers=key)).json()
    assert [video["id"] for video in listed["data"]] == [kept["id"]]
    after = await client.get(f"{door}/videos", params={"after": video_id}, headers=key)
    assert openai_error(after, 400, "invalid_value")["param"] == "after"
