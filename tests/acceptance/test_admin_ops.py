"""The operators' routes (activity log, statistics, run-time config) and what the run-time
config switches (registration, maintenance), over real HTTP on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
import trio

from sora_actors.clock import wall_ms
from sora_actors.settings import Settings
from tests.conftest import make_settings
from tests.harness import LiveServer, assert_error

from .admin_helpers import admin_headers
from .journey import finished_task

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
ADMIN_ROUTES = [
    ("GET", "/api/admin/logs"),
    ("GET", "/api/admin/statistics"),
    ("GET", "/api/admin/stats"),
    ("GET", "/api/admin/config"),
    ("PUT", "/api/admin/config"),
]


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    # A job takes 1.2 to 4.6 s: long enough to still run while maintenance starts.
    return make_settings(tmp_path, database_url, simulator_time_scale=40, polling_speedup=40)


async def wait_for_status(
    server: LiveServer, headers: dict[str, str], video_id: str, statuses: set[str]
) -> dict[str, Any]:
    with trio.fail_after(60):
        while True:
            response = await server.client.get(f"/api/video/tasks/{video_id}", headers=headers)
            task: dict[str, Any] = response.json()["data"]
            if task["status"] in statuses:
                return task
            await trio.sleep(0.05)


async def put_config(server: LiveServer, headers: dict[str, str], **values: Any) -> Any:
    response = await server.client.put("/api/admin/config", json=values, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()["data"]


async def test_every_admin_route_is_401_without_a_token_and_403_for_a_user(
    server: LiveServer,
) -> None:
    user = await server.user("plain")
    for method, path in ADMIN_ROUTES:
        body = {"json": {"registrationOpen": False}} if method == "PUT" else {}
        anonymous = await server.client.request(method, path, **body)
        assert_error(anonymous, 401, "AUTH_REQUIRED")
        forbidden = await server.client.request(method, path, headers=user, **body)
        assert_error(forbidden, 403, "FORBIDDEN")
    # Nothing changed behind the refusals.
    public = await server.client.get("/api/config/public")
    assert public.json()["data"]["registrationOpen"] is True


async def test_activity_log_lists_what_happened_with_filters(server: LiveServer) -> None:
    admin = await admin_headers(server)
    alice = await server.user("alice")
    me = (await server.client.get("/api/auth/me", headers=alice)).json()["data"]
    wrong = await server.client.post(
        "/api/auth/login", json={"username": "alice", "password": "not-her-password"}
    )
    assert_error(wrong, 401, "INVALID_CREDENTIALS")
    created = await server.client.post(
        "/api/video/tasks", json={"prompt": "a kite over dunes"}, headers=alice
    )
    video_id = created.json()["data"]["videoId"]
    cancelled = await server.client.post(f"/api/video/tasks/{video_id}/cancel", headers=alice)
    assert cancelled.status_code == 200, cancelled.text
    doomed = await server.client.post(
        "/api/video/tasks", json={"prompt": "a storm #sim-fail"}, headers=alice
    )
    failed_id = doomed.json()["data"]["videoId"]
    await wait_for_status(server, alice, failed_id, {"FAILED"})

    everything = await server.client.get(
        "/api/admin/logs", params={"userId": me["id"], "pageSize": 100}, headers=admin
    )
    assert everything.status_code == 200, everything.text
    page = everything.json()["data"]
    assert page["page"] == 1 and page["pageSize"] == 100
    actions = [item["action"] for item in page["items"]]
    # Newest first; each action where it happened, for this user.
    assert actions == [
        "task_failed",
        "generate_video",
        "task_cancel",
        "generate_video",
        "login_failed",
        "login",
        "register",
    ], actions
    assert page["total"] == len(actions)
    item = page["items"][-1]
    assert set(item) == {
        "id", "userId", "action", "details", "ip", "userAgent", "createdAt", "user"
    }  # fmt: skip
    assert item["user"] == {"username": "alice"} and item["userId"] == me["id"]
    assert item["ip"] == "127.0.0.1" and item["createdAt"].endswith("Z")
    failure = page["items"][0]["details"]
    assert failure["videoId"] == failed_id and failure["code"]
    assert page["items"][1]["details"] == {
        "videoId": failed_id,
        "model": "sora-2",
        "size": "720x1280",
        "duration": 4,
        "image": False,
    }
    assert page["items"][4]["details"] == {"username": "alice"}

    by_action = await server.client.get(
        "/api/admin/logs", params={"action": "generate_video"}, headers=admin
    )
    generated = by_action.json()["data"]
    assert generated["total"] == 2
    assert {item["details"]["videoId"] for item in generated["items"]} == {video_id, failed_id}

    paged = await server.client.get(
        "/api/admin/logs",
        params={"userId": me["id"], "page": 2, "pageSize": 3},
        headers=admin,
    )
    second = paged.json()["data"]
    assert [item["action"] for item in second["items"]] == actions[3:6]
    assert second["total"] == len(actions)

    # Time bounds: ISO or Unix ms, inclusive; a window before everything holds nothing.
    oldest = page["items"][-1]["createdAt"]
    newest = page["items"][0]["createdAt"]
    window = await server.client.get(
        "/api/admin/logs",
        params={"userId": me["id"], "from": oldest, "to": newest, "pageSize": 100},
        headers=admin,
    )
    assert window.json()["data"]["total"] == len(actions)
    before = await server.client.get(
        "/api/admin/logs", params={"to": "2001-01-01", "userId": me["id"]}, headers=admin
    )
    assert before.json()["data"] == {"items": [], "total": 0, "page": 1, "pageSize": 20}
    after = await server.client.get(
        "/api/admin/logs", params={"from": str(wall_ms() + 60_000)}, headers=admin
    )
    assert after.json()["data"]["total"] == 0
    # No secret in the log: no password, no hash, no token.
    text = everything.text
    assert "password-1" not in text and "not-her-password" not in text and "$2b$" not in text
    assert alice["Authorization"].split()[1] not in text


async def test_bad_log_filters_are_400_naming_each(server: LiveServer) -> None:
    admin = await admin_headers(server)
    response = await server.client.get(
        "/api/admin/logs",
        params={
            "action": "DROP TABLE",
            "from": "yesterday",
            "to": "2020-13-45",
            "page": "0",
            "pageSize": "1000",
            "userId": "x" * 300,
        },
        headers=admin,
    )
    body = assert_error(response, 400, "VALIDATION_ERROR")
    fields = [problem["field"] for problem in body["error"]["details"]]
    assert fields == ["action", "userId", "from", "to", "page", "pageSize"]
    reversed_window = await server.client.get(
        "/api/admin/logs",
        params={"from": "2024-02-01T00:00:00Z", "to": "2024-01-01"},
        headers=admin,
    )
    body = assert_error(reversed_window, 400, "VALIDATION_ERROR")
    assert body["error"]["details"] == [{"field": "from", "message": "must not be after to"}]


async def _add_licence(conn: Any, key: str, kind: str, user_id: str | None, **times: int) -> None:
    await conn.execute(
        "INSERT INTO licenses (id, key_hash, key_last4, type, user_id, activated_at, expires_at,"
        " created_at) VALUES (:key, :key, :last4, :type, :user, :activated, :expires, :created)",
        {
            "key": key,
            "last4": key[-4:],
            "type": kind,
            "user": user_id,
            "activated": times.get("activated"),
            "expires": times.get("expires"),
            "created": wall_ms(),
        },
    )


async def test_statistics_count_users_tasks_jobs_videos_and_licences(server: LiveServer) -> None:
    admin = await admin_headers(server)
    bob = await server.user("bob")
    await server.register("carol")  # never logs in, never acts after registering
    done = await finished_task(server, bob, "a lighthouse in fog")
    doomed = await server.client.post(
        "/api/video/tasks", json={"prompt": "a storm #sim-fail"}, headers=bob
    )
    await wait_for_status(server, bob, doomed.json()["data"]["videoId"], {"FAILED"})
    queued = await server.client.post(
        "/api/video/tasks", json={"prompt": "a quiet lake"}, headers=bob
    )
    queued_id = queued.json()["data"]["videoId"]
    await server.client.post(f"/api/video/tasks/{queued_id}/cancel", headers=bob)
    bob_id = (await server.client.get("/api/auth/me", headers=bob)).json()["data"]["id"]
    now = wall_ms()

    async def licences(conn: Any) -> None:
        await _add_licence(conn, "K-UNUSED", "TRIAL", None)
        await _add_licence(conn, "K-ACTIVE", "PRO", bob_id, activated=now, expires=now + 86_400_000)
        await _add_licence(conn, "K-OLD", "PRO", bob_id, activated=now - 10, expires=now - 5)
        await _add_licence(conn, "K-FOREVER", "ENTERPRISE", bob_id, activated=now)

    await server.services.storage.database.run(licences)

    response = await server.client.get("/api/admin/statistics", headers=admin)
    assert response.status_code == 200, response.text
    stats = response.json()["data"]
    users = stats["users"]
    assert users["total"] == 3
    # root and bob logged in; carol registered (an activity) too, so she counts as active.
    assert users["active24h"] == 3 and users["active7d"] == 3
    assert len(users["newPerDay"]) == 30
    today = users["newPerDay"][-1]
    assert today == {"date": today["date"], "count": 3}
    assert sum(day["count"] for day in users["newPerDay"]) == 3

    tasks = stats["tasks"]
    assert tasks["total"] == 3
    assert tasks["byStatus"] == {
        "QUEUED": 0, "PROCESSING": 0, "COMPLETED": 1, "FAILED": 1, "CANCELLED": 1
    }  # fmt: skip
    assert tasks["perDay"][-1] == {
        "date": today["date"],
        "created": 3,
        "queued": 0,
        "processing": 0,
        "completed": 1,
        "failed": 1,
        "cancelled": 1,
    }
    assert stats["upstream"]["jobs"] >= 2  # the completed and failed ones reached upstream
    assert stats["upstream"]["failed"] == 1
    assert stats["upstream"]["failureRate"] == round(1 / stats["upstream"]["finished"], 4)

    records = await server.services.storage.content.records(done.video_id)
    assert stats["videos"] == {
        "stored": 1,
        "bytes": sum(record.size_bytes for record in records.values()),
    }
    assert stats["videos"]["bytes"] > 0

    assert stats["licenses"] == {
        "total": 4,
        "byType": {"TRIAL": 1, "PRO": 2, "ENTERPRISE": 1},
        "byState": {"active": 2, "expired": 1, "revoked": 0, "unused": 1},
        "byTypeAndState": {
            "TRIAL": {"active": 0, "expired": 0, "revoked": 0, "unused": 1},
            "PRO": {"active": 1, "expired": 1, "revoked": 0, "unused": 0},
            "ENTERPRISE": {"active": 1, "expired": 0, "revoked": 0, "unused": 0},
        },
    }
    assert stats["generatedAt"].endswith("Z")
    assert "K-ACTIVE" not in response.text  # counts, never keys

    # The old name answers the same figures.
    alias = (await server.client.get("/api/admin/stats", headers=admin)).json()["data"]
    assert {key: value for key, value in alias.items() if key != "generatedAt"} == {
        key: value for key, value in stats.items() if key != "generatedAt"
    }


async def test_config_is_typed_validated_and_every_change_logged(server: LiveServer) -> None:
    admin = await admin_headers(server)
    first = await server.client.get("/api/admin/config", headers=admin)
    assert first.json()["data"] == {
        "registrationOpen": True,
        "maintenance": {"enabled": False, "message": ""},
        "defaultPlan": "FREE",
        "announcement": None,
    }

    bad = await server.client.put(
        "/api/admin/config",
        json={
            "registrationOpen": "no",
            "maintenance": {"enabled": 1, "reason": "x"},
            "defaultPlan": "gold plan",
            "colour": "blue",
        },
        headers=admin,
    )
    body = assert_error(bad, 400, "VALIDATION_ERROR")
    fields = sorted(problem["field"] for problem in body["error"]["details"])
    assert fields == [
        "colour",
        "maintenance.enabled",
        "maintenance.reason",
        "registrationOpen",
    ], body
    wrong_plan = await server.client.put(
        "/api/admin/config", json={"defaultPlan": "gold plan"}, headers=admin
    )
    body = assert_error(wrong_plan, 400, "VALIDATION_ERROR")
    assert body["error"]["details"][0]["field"] == "defaultPlan"
    for payload in ({}, [], {"registrationOpen": None}):
        assert_error(
            await server.client.put("/api/admin/config", json=payload, headers=admin),
            400,
            "VALIDATION_ERROR",
        )
    unchanged = await server.client.get("/api/admin/config", headers=admin)
    assert unchanged.json() == first.json()

    saved = await put_config(
        server, admin, defaultPlan="TRIAL", announcement="Upgrade on Sunday 02:00 UTC"
    )
    assert saved["defaultPlan"] == "TRIAL"
    assert saved["announcement"] == "Upgrade on Sunday 02:00 UTC"
    assert server.services.runtime.config.current().default_plan == "TRIAL"
    public = (await server.client.get("/api/config/public")).json()["data"]
    assert public == {
        "registrationOpen": True,
        "maintenance": {"enabled": False, "message": ""},
        "announcement": "Upgrade on Sunday 02:00 UTC",
    }
    cleared = await put_config(server, admin, announcement=None)
    assert cleared["announcement"] is None and cleared["defaultPlan"] == "TRIAL"

    root_id = (await server.client.get("/api/auth/me", headers=admin)).json()["data"]["id"]
    log = await server.client.get(
        "/api/admin/logs", params={"action": "admin_config_update"}, headers=admin
    )
    entries = log.json()["data"]["items"]
    assert [entry["userId"] for entry in entries] == [root_id, root_id]
    assert entries[0]["details"] == {
        "announcement": {"old": "Upgrade on Sunday 02:00 UTC", "new": None}
    }
    assert entries[1]["details"] == {
        "defaultPlan": {"old": None, "new": "TRIAL"},
        "announcement": {"old": None, "new": "Upgrade on Sunday 02:00 UTC"},
    }


async def test_closed_registration_is_403_until_reopened(server: LiveServer) -> None:
    admin = await admin_headers(server)
    await put_config(server, admin, registrationOpen=False)
    refused = await server.client.post(
        "/api/auth/register", json={"username": "latecomer", "password": "password-1"}
    )
    assert_error(refused, 403, "REGISTRATION_CLOSED")
    assert (await server.client.get("/api/config/public")).json()["data"][
        "registrationOpen"
    ] is False
    # Existing accounts still log in.
    await server.login("root")
    await put_config(server, admin, registrationOpen=True)
    await server.register("latecomer")


async def test_maintenance_refuses_new_tasks_while_a_running_one_completes(
    server: LiveServer, tmp_path: Path
) -> None:
    admin = await admin_headers(server)
    dana = await server.user("dana")
    source = await finished_task(server, dana, "a red balloon")
    running = await server.client.post(
        "/api/video/tasks", json={"prompt": "a long train"}, headers=dana
    )
    running_id = running.json()["data"]["videoId"]
    message = "Back at 14:00 UTC: we are moving to a bigger disk."
    await put_config(server, admin, maintenance={"enabled": True, "message": message})

    refusals = [
        await server.client.post("/api/video/tasks", json={"prompt": "json"}, headers=dana),
        await server.client.post(
            "/api/video/tasks",
            data={"prompt": "multipart"},
            files={"input_reference": ("ref.png", PNG, "image/png")},
            headers=dana,
        ),
        await server.client.post(
            f"/api/video/tasks/{source.video_id}/remix", json={"prompt": "remix"}, headers=dana
        ),
    ]
    for refused in refusals:
        body = assert_error(refused, 503, "MAINTENANCE")
        assert body["message"] == message
    still = await server.client.get(f"/api/video/tasks/{running_id}", headers=dana)
    assert still.json()["data"]["status"] in ("QUEUED", "PROCESSING")
    finished = await wait_for_status(server, dana, running_id, {"COMPLETED", "FAILED"})
    assert finished["status"] == "COMPLETED"
    listing = await server.client.get("/api/video/tasks", headers=dana)
    assert listing.json()["data"]["total"] == 2  # nothing was created by the refused calls

    await put_config(server, admin, maintenance={"enabled": False})
    again = await server.client.post("/api/video/tasks", json={"prompt": "after"}, headers=dana)
    assert again.status_code == 201, again.text


async def _write_config(conn: Any, key: str, value: Any) -> None:
    await conn.execute("DELETE FROM system_config WHERE key = :key", {"key": key})
    await conn.execute(
        "INSERT INTO system_config (key, value, updated_at) VALUES (:key, :value, :at)",
        {"key": key, "value": json.dumps(value), "at": wall_ms()},
    )


async def test_a_row_changed_outside_the_server_is_applied_within_a_second(
    tmp_path: Path, sqlite_url: str
) -> None:
    """SQLite: the 1 s re-read picks up a change made by another process (the CLI, by hand)."""
    from sora_actors.storage import open_storage
    from tests.harness import live_server

    settings = make_settings(tmp_path, sqlite_url, config_refresh_seconds=1.0)
    async with live_server(settings) as server, open_storage(sqlite_url, exclusive=False) as other:
        assert server.services.runtime.config.current().announcement is None
        await other.database.run(_write_config, "announcement", "from outside")
        written = trio.current_time()
        while server.services.runtime.config.current().announcement != "from outside":
            assert trio.current_time() - written < 2.0, "the change was not applied in time"
            await trio.sleep(0.02)
        public = await server.client.get("/api/config/public")
        assert public.json()["data"]["announcement"] == "from outside"


@pytest.mark.postgres
async def test_a_change_on_one_instance_applies_on_another_within_a_second(
    tmp_path: Path, postgres_url: str
) -> None:
    """Two servers on one PostgreSQL database: the change reaches B by notification, not by
    the 30 s safety re-read (a stale cache fails this)."""
    from tests.harness import live_server

    def instance(name: str) -> Settings:
        return make_settings(
            tmp_path / name, postgres_url, instance_id=f"{name}-{uuid.uuid4().hex[:6]}"
        )

    async with live_server(instance("a")) as a, live_server(instance("b")) as b:
        admin_a = await admin_headers(a)
        user_b = await b.user("erin")
        assert b.services.runtime.config.current().maintenance.enabled is False
        accepted = await b.client.post(
            "/api/video/tasks", json={"prompt": "before"}, headers=user_b
        )
        assert accepted.status_code == 201, accepted.text

        await put_config(a, admin_a, maintenance={"enabled": True, "message": "upgrading"})
        saved = trio.current_time()
        while not b.services.runtime.config.current().maintenance.enabled:
            assert trio.current_time() - saved < 1.0, "instance B still has the old settings"
            await trio.sleep(0.01)
        refused = await b.client.post("/api/video/tasks", json={"prompt": "during"}, headers=user_b)
        assert assert_error(refused, 503, "MAINTENANCE")["message"] == "upgrading"

        # And back, the other way round: B's admin reopens, A sees it.
        admin_b = {"Authorization": f"Bearer {await b.login('root')}"}
        await put_config(b, admin_b, maintenance={"enabled": False}, announcement="welcome back")
        saved = trio.current_time()
        while a.services.runtime.config.current().announcement != "welcome back":
            assert trio.current_time() - saved < 1.0, "instance A still has the old settings"
            await trio.sleep(0.01)
        assert a.services.runtime.config.current().maintenance.enabled is False
