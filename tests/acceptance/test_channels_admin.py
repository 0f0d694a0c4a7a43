"""Channels admins manage at run time (`/api/admin/channels`), over real HTTP with real
`sora-actors simulator` processes, on SQLite and PostgreSQL: the routes' shapes and
refusals, keys never shown, a created channel taking the next task, a deleted one taking no
new task while its running task completes, and (PostgreSQL) a channel created on one
instance used by another within a second."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
import trio

from sora_actors.settings import Settings
from tests.conftest import make_settings
from tests.harness import LiveServer, assert_error, live_server

from .admin_helpers import admin_headers
from .test_channels import QUICK, SERVER, Simulator, channel, simulators

pytestmark = pytest.mark.slow

ROUTES = [
    ("GET", "/api/admin/channels"),
    ("POST", "/api/admin/channels"),
    ("PUT", "/api/admin/channels/default"),
    ("DELETE", "/api/admin/channels/default"),
]
SECRET_KEY = "sk-very-secret-key-abcd1234"
TERMINAL = ("COMPLETED", "FAILED", "CANCELLED")


def body(name: str, sim: Simulator | str, key: str = SECRET_KEY, **extra: Any) -> dict[str, Any]:
    """A channel as the API takes it (camelCase)."""
    return {
        "name": name,
        "baseUrl": sim if isinstance(sim, str) else sim.url,
        "apiKeys": [key],
        "maxConcurrentJobs": 500,
        "maxRequestsPerSecond": 1000,
        **extra,
    }


async def create(server: LiveServer, admin: dict[str, str], payload: dict[str, Any]) -> Any:
    response = await server.client.post("/api/admin/channels", json=payload, headers=admin)
    assert response.status_code == 201, response.text
    return response.json()["data"]


async def new_task(server: LiveServer, headers: dict[str, str]) -> str:
    prompt = f"admin channel {uuid.uuid4().hex[:8]}"
    created = await server.client.post("/api/video/tasks", json={"prompt": prompt}, headers=headers)
    assert created.status_code == 201, created.text
    video_id: str = created.json()["data"]["videoId"]
    return video_id


async def wait_task(
    server: LiveServer, headers: dict[str, str], video_id: str, statuses: tuple[str, ...]
) -> dict[str, Any]:
    with trio.fail_after(60):
        while True:
            response = await server.client.get(f"/api/video/tasks/{video_id}", headers=headers)
            task: dict[str, Any] = response.json()["data"]
            if task["status"] in statuses:
                return task
            await trio.sleep(0.05)


async def channel_of(server: LiveServer, video_id: str) -> str | None:
    stored = await server.services.storage.tasks.get(video_id)
    assert stored is not None
    return stored.channel


async def _activity(conn: Any) -> list[Any]:
    return list(
        await conn.fetch_all(
            "SELECT action, user_id, details FROM activity_log "
            "WHERE action LIKE 'admin_channel_%' ORDER BY created_at, id"
        )
    )


async def test_every_channel_route_is_401_without_a_token_and_403_for_a_user(
    server: LiveServer,
) -> None:
    user = await server.user("plain")
    for method, path in ROUTES:
        payload = {"json": body("x", "http://127.0.0.1:9/v1")} if method != "GET" else {}
        assert_error(await server.client.request(method, path, **payload), 401, "AUTH_REQUIRED")
        refused = await server.client.request(method, path, headers=user, **payload)
        assert_error(refused, 403, "FORBIDDEN")
    assert list(server.services.runtime.channel_registry.specs) == ["default"]


async def test_create_update_delete_shapes_keys_never_shown_and_every_change_logged(
    server: LiveServer,
) -> None:
    admin = await admin_headers(server)
    created = await create(
        server,
        admin,
        body("extra", "http://127.0.0.1:9/v1", priority=-5, webhookSecret="whsec_" + "A" * 32),
    )
    assert created["name"] == "extra"
    assert created["keys"] == ["...1234"]
    assert created["priority"] == -5
    assert created["webhookSecretSet"] is True
    assert created["health"]["name"] == "extra"
    assert {"apiKeys", "webhookSecret"}.isdisjoint(created)

    duplicate = await server.client.post(
        "/api/admin/channels", json=body("extra", "http://127.0.0.1:9/v1"), headers=admin
    )
    assert_error(duplicate, 409, "CHANNEL_EXISTS")

    bad = await server.client.post(
        "/api/admin/channels",
        json={"name": "bad name", "baseUrl": "ftp://x", "weight": 0, "colour": "red"},
        headers=admin,
    )
    details = assert_error(bad, 400, "VALIDATION_ERROR")["error"]["details"]
    assert {d["field"] for d in details} == {"colour", "name", "baseUrl", "weight", "apiKeys"}

    # Partial update: omitted keys stay; the key never comes back.
    updated = await server.client.put(
        "/api/admin/channels/extra", json={"priority": 3, "models": ["sora-2"]}, headers=admin
    )
    assert updated.status_code == 200, updated.text
    data = updated.json()["data"]
    assert (data["priority"], data["models"], data["keys"]) == (3, ["sora-2"], ["...1234"])
    assert server.services.runtime.channel_registry.specs["extra"].api_keys == (SECRET_KEY,)
    renamed = await server.client.put(
        "/api/admin/channels/extra", json={"name": "other"}, headers=admin
    )
    assert assert_error(renamed, 400, "VALIDATION_ERROR")["error"]["details"] == [
        {"field": "name", "message": "cannot be changed"}
    ]
    wrong = await server.client.put(
        "/api/admin/channels/extra", json={"weight": -1, "apiKeys": []}, headers=admin
    )
    fields = {d["field"] for d in assert_error(wrong, 400, "VALIDATION_ERROR")["error"]["details"]}
    assert fields == {"weight", "apiKeys"}
    missing = await server.client.put(
        "/api/admin/channels/nope", json={"priority": 1}, headers=admin
    )
    assert_error(missing, 404, "CHANNEL_NOT_FOUND")

    listed = (await server.client.get("/api/admin/channels", headers=admin)).json()["data"]
    assert [c["name"] for c in listed["channels"]] == ["default", "extra"]
    listing = json.dumps(listed)
    assert SECRET_KEY not in listing and "whsec_" not in listing

    deleted = await server.client.delete("/api/admin/channels/extra", headers=admin)
    assert deleted.status_code == 200, deleted.text
    assert deleted.json()["data"] == {"name": "extra", "deleted": True}
    assert_error(
        await server.client.delete("/api/admin/channels/extra", headers=admin),
        404,
        "CHANNEL_NOT_FOUND",
    )
    # The settings' channel can go too, but never the last one.
    assert_error(
        await server.client.delete("/api/admin/channels/default", headers=admin),
        409,
        "CHANNEL_LAST",
    )
    listed = (await server.client.get("/api/admin/channels", headers=admin)).json()["data"]
    assert [c["name"] for c in listed["channels"]] == ["default"]
    # Created again after a delete: a new channel of that name.
    again = await create(server, admin, body("extra", "http://127.0.0.1:9/v1", key="sk-new-9999"))
    assert again["keys"] == ["...9999"] and again["priority"] == 0

    rows = await server.services.storage.database.run(_activity)
    actions = [(row["action"], json.loads(row["details"])) for row in rows]
    assert actions == [
        ("admin_channel_create", {"channel": "extra", "dialect": "openai"}),
        ("admin_channel_update", {"channel": "extra", "changed": ["models", "priority"]}),
        ("admin_channel_delete", {"channel": "extra"}),
        ("admin_channel_create", {"channel": "extra", "dialect": "openai"}),
    ]
    assert len({row["user_id"] for row in rows}) == 1 and rows[0]["user_id"]
    assert all(SECRET_KEY not in row["details"] for row in rows)


async def test_a_channel_created_via_the_api_receives_the_next_task(
    database_url: str, tmp_path: Path
) -> None:
    with simulators((*QUICK, "--seed", "1"), (*QUICK, "--seed", "2")) as (old, fresh):
        settings = make_settings(
            tmp_path, database_url, channels=[channel("old", old, "sk-old", 0)], **SERVER
        )
        async with live_server(settings) as server:
            admin = await admin_headers(server)
            user = await server.user("chan")
            first = await new_task(server, user)
            await create(server, admin, body("fresh", fresh, key="sk-fresh", priority=10))
            second = await new_task(server, user)
            done = await wait_task(server, user, second, TERMINAL)
            assert done["status"] == "COMPLETED", done
            assert await channel_of(server, second) == "fresh"
            assert await channel_of(server, first) == "old"
            jobs = await fresh.jobs("sk-fresh")
            assert [job["id"] for job in jobs] == [done["externalVideoId"]]


async def test_a_deleted_channel_takes_no_new_task_while_its_running_task_completes(
    database_url: str, tmp_path: Path
) -> None:
    # The preferred channel's jobs take 3..5 s: one still runs at the delete.
    slow = ("--time-scale", "1", "--queue-min", "0.5", "--queue-max", "1", "--run-median", "4")
    slow += ("--run-min", "3", "--run-max", "5", "--run-sigma", "0.2", "--seed", "3")
    with simulators(slow, (*QUICK, "--seed", "4")) as (preferred, spare):
        channels = [channel("preferred", preferred, "sk-p", 10), channel("spare", spare, "sk-s", 0)]
        settings = make_settings(tmp_path, database_url, channels=channels, **SERVER)
        async with live_server(settings) as server:
            admin = await admin_headers(server)
            user = await server.user("chan")
            running = await new_task(server, user)
            await wait_task(server, user, running, ("PROCESSING", *TERMINAL))
            assert await channel_of(server, running) == "preferred"
            deleted = await server.client.delete("/api/admin/channels/preferred", headers=admin)
            assert deleted.status_code == 200, deleted.text
            still = (await server.client.get(f"/api/video/tasks/{running}", headers=user)).json()[
                "data"
            ]
            assert still["status"] not in TERMINAL, "the task ended before the delete"

            later = await new_task(server, user)
            assert (await wait_task(server, user, later, TERMINAL))["status"] == "COMPLETED"
            assert await channel_of(server, later) == "spare"
            ended = await wait_task(server, user, running, TERMINAL)
            assert ended["status"] == "COMPLETED", ended
            assert await channel_of(server, running) == "preferred"
            assert [j["id"] for j in await preferred.jobs("sk-p")] == [ended["externalVideoId"]]


@pytest.mark.postgres
async def test_a_channel_created_on_one_instance_is_used_by_another_within_a_second(
    tmp_path: Path, postgres_url: str
) -> None:
    """Two servers on one PostgreSQL database: B learns of A's channel by notification (its
    safety re-read comes only every 30 s)."""
    with simulators((*QUICK, "--seed", "5"), (*QUICK, "--seed", "6")) as (old, fresh):

        def instance(name: str) -> Settings:
            return make_settings(
                tmp_path / name,
                postgres_url,
                instance_id=f"{name}-{uuid.uuid4().hex[:6]}",
                channels=[channel("old", old, "sk-old", 0)],
                **SERVER,
            )

        async with live_server(instance("a")) as a, live_server(instance("b")) as b:
            admin = await admin_headers(a)
            user = await b.user("erin")
            await create(a, admin, body("fresh", fresh, key="sk-fresh", priority=10))
            saved = trio.current_time()
            while "fresh" not in b.services.runtime.channel_registry.specs:
                assert trio.current_time() - saved < 1.0, "instance B does not know the channel"
                await trio.sleep(0.01)
            video_id = await new_task(b, user)
            assert await channel_of(b, video_id) in (None, "fresh")
            done = await wait_task(b, user, video_id, TERMINAL)
            assert done["status"] == "COMPLETED", done
            assert await channel_of(b, video_id) == "fresh"

            # And a delete on B takes it out of A's routing just as fast.
            admin_b = {"Authorization": f"Bearer {await b.login('root')}"}
            gone = await b.client.delete("/api/admin/channels/fresh", headers=admin_b)
            assert gone.status_code == 200, gone.text
            saved = trio.current_time()
            while "fresh" in a.services.runtime.channels.channels:
                assert trio.current_time() - saved < 1.0, "instance A still routes to it"
                await trio.sleep(0.01)


async def test_a_channel_stored_outside_the_server_is_applied_within_a_second(
    tmp_path: Path, sqlite_url: str
) -> None:
    """SQLite: the 1 s re-read picks up a channel written by another process (by hand)."""
    from sora_actors.storage import Activity, open_storage

    settings = make_settings(tmp_path, sqlite_url, config_refresh_seconds=1.0)
    async with live_server(settings) as server, open_storage(sqlite_url, exclusive=False) as other:
        spec = {"name": "hand", "base_url": "http://127.0.0.1:9/v1", "api_keys": ["sk-hand"]}
        await other.channels.write("hand", spec, Activity("admin_channel_create"))
        written = trio.current_time()
        while server.services.runtime.channels.named("hand") is None:
            assert trio.current_time() - written < 2.0, "the channel was not applied in time"
            await trio.sleep(0.02)
        await other.channels.write("hand", spec, Activity("admin_channel_delete"), deleted=True)
        written = trio.current_time()
        while "hand" in server.services.runtime.channel_registry.specs:
            assert trio.current_time() - written < 2.0, "the delete was not applied in time"
            await trio.sleep(0.02)
        assert server.services.runtime.channels.named("hand") is None


async def test_a_running_task_of_a_deleted_channel_completes_there_after_a_restart(
    database_url: str, tmp_path: Path
) -> None:
    """The tombstone keeps the channel's last settings: the restarted server opens it out
    of routing for the task still on it, which completes there, not on the default."""
    slow = ("--time-scale", "1", "--queue-min", "0.5", "--queue-max", "1", "--run-median", "5")
    slow += ("--run-min", "4", "--run-max", "6", "--run-sigma", "0.2", "--seed", "7")
    with simulators(slow, (*QUICK, "--seed", "8")) as (doomed, spare):
        channels = [channel("doomed", doomed, "sk-d", 10), channel("spare", spare, "sk-s", 0)]
        settings = make_settings(tmp_path, database_url, channels=channels, **SERVER)
        async with live_server(settings) as server:
            admin = await admin_headers(server)
            user = await server.user("chan")
            running = await new_task(server, user)
            await wait_task(server, user, running, ("PROCESSING", *TERMINAL))
            deleted = await server.client.delete("/api/admin/channels/doomed", headers=admin)
            assert deleted.status_code == 200, deleted.text
        async with live_server(settings) as server:
            registry = server.services.runtime.channel_registry
            assert list(registry.specs) == ["spare"]
            assert server.services.runtime.channels.retired["doomed"].info.priority == 10
            user = {"Authorization": f"Bearer {await server.login('chan')}"}
            ended = await wait_task(server, user, running, TERMINAL)
            assert ended["status"] == "COMPLETED", ended
            assert await channel_of(server, running) == "doomed"
            assert [j["id"] for j in await doomed.jobs("sk-d")] == [ended["externalVideoId"]]
