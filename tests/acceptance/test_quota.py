"""Plans enforced on task creation over real HTTP, on SQLite and PostgreSQL: the race of
3N creates against a limit of N, the 24-hour and 30-day windows with exact Retry-After (in
virtual wall time), PLAN_FORBIDS for each thing a plan can leave out, remix, and replays
of an Idempotency-Key."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import httpx2
import pytest
import trio

from tests.conftest import make_settings
from tests.harness import LiveServer, assert_error, live_server

from .admin_helpers import admin_headers
from .journey import FAST, finished_task
from .licensing import VirtualWall, plans, virtual_wall

N = 3
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


@pytest.fixture
def wall(monkeypatch: pytest.MonkeyPatch) -> VirtualWall:
    return virtual_wall(monkeypatch)


def quota_settings(tmp_path: Path, database_url: str, **free: Any) -> Any:
    return make_settings(tmp_path, database_url, plans=plans(FREE=free), default_plan="FREE")


async def _create(
    server: LiveServer, headers: dict[str, str], body: dict[str, Any] | None = None
) -> httpx2.Response:
    return await server.client.post(
        "/api/video/tasks", json=body or {"prompt": "a fox"}, headers=headers
    )


async def test_3n_simultaneous_creates_admit_exactly_n(tmp_path: Path, database_url: str) -> None:
    async with live_server(quota_settings(tmp_path, database_url, max_running=N)) as server:
        alice, bob = await server.user("alice"), await server.user("bob")
        answers: list[httpx2.Response] = []

        async def one(i: int) -> None:
            answers.append(await _create(server, alice, {"prompt": f"fox {i}"}))

        async with trio.open_nursery() as nursery:
            for i in range(3 * N):
                nursery.start_soon(one, i)

        created = [answer for answer in answers if answer.status_code == 201]
        refused = [answer for answer in answers if answer.status_code != 201]
        assert len(created) == N, [answer.text for answer in answers]
        for answer in refused:
            body = assert_error(answer, 429, "QUOTA_EXCEEDED")
            assert body["error"]["details"] == {"limit": N, "used": N, "window": "running"}
            assert answer.headers["Retry-After"] == "10"
        stored = await server.client.get("/api/video/tasks", headers=alice)
        assert stored.json()["data"]["total"] == N
        # Per user: bob is not held back by alice's tasks.
        assert (await _create(server, bob)).status_code == 201

        # A finished task frees its place.
        first = created[0].json()["data"]["videoId"]
        cancel = await server.client.post(f"/api/video/tasks/{first}/cancel", headers=alice)
        assert cancel.status_code == 200, cancel.text
        assert (await _create(server, alice)).status_code == 201
        assert_error(await _create(server, alice), 429, "QUOTA_EXCEEDED")
        me = (await server.client.get("/api/auth/me", headers=alice)).json()["data"]
        assert me["usage"] == {"running": N, "tasksLast24Hours": N + 1, "tasksLast30Days": N + 1}
        assert me["plan"]["name"] == "FREE" and me["plan"]["maxRunning"] == N


async def test_day_and_30_day_windows_say_exactly_when(
    tmp_path: Path, database_url: str, wall: VirtualWall
) -> None:
    settings = quota_settings(tmp_path, database_url, tasks_per_day=2, tasks_per_30_days=3)
    async with live_server(settings) as server:
        alice = await server.user("alice")
        assert (await _create(server, alice)).status_code == 201  # at T
        wall.advance(1000)
        assert (await _create(server, alice)).status_code == 201  # at T + 1000 s
        wall.advance(1000)
        refused = await _create(server, alice)  # at T + 2000 s: the first leaves at T + 1 day
        body = assert_error(refused, 429, "QUOTA_EXCEEDED")
        assert body["error"]["details"] == {"limit": 2, "used": 2, "window": "24h"}
        assert refused.headers["Retry-After"] == str(86400 - 2000)

        wall.advance(86400 - 2000 - 0.001)  # one millisecond early: still in the window
        assert_error(await _create(server, alice), 429, "QUOTA_EXCEEDED")
        wall.advance(0.001)
        assert (await _create(server, alice)).status_code == 201  # at T + 1 day

        # Three in 30 days: the next place is when the first is 30 days old.
        wall.advance(86400)
        refused = await _create(server, alice)
        body = assert_error(refused, 429, "QUOTA_EXCEEDED")
        assert body["error"]["details"] == {"limit": 3, "used": 3, "window": "30d"}
        assert refused.headers["Retry-After"] == str(30 * 86400 - 2 * 86400)
        info = (await server.client.get("/api/license/info", headers=alice)).json()["data"]
        assert info["usage"] == {"running": 3, "tasksLast24Hours": 0, "tasksLast30Days": 3}


async def test_plan_forbids_names_what_it_leaves_out(tmp_path: Path, database_url: str) -> None:
    async with live_server(quota_settings(tmp_path, database_url)) as server:
        alice = await server.user("alice")
        image = "data:image/png;base64," + base64.b64encode(PNG).decode()
        for body, field, value, allowed in [
            ({"model": "sora-2-pro"}, "model", "sora-2-pro", ["sora-2"]),
            ({"size": "1792x1024"}, "size", "1792x1024", ["720x1280"]),
            ({"duration": 12}, "duration", 12, 8),
            ({"referenceImage": image}, "image_to_video", True, False),
        ]:
            refused = await _create(server, alice, {"prompt": "p", **body})
            error = assert_error(refused, 403, "PLAN_FORBIDS")
            assert error["error"]["details"] == {
                "plan": "FREE",
                "field": field,
                "value": value,
                "allowed": allowed,
            }
            assert "FREE" in error["message"] and str(value) in error["message"]
        multipart = await server.client.post(
            "/api/video/tasks",
            data={"prompt": "p"},
            files={"input_reference": ("a.png", PNG, "image/png")},
            headers=alice,
        )
        assert assert_error(multipart, 403, "PLAN_FORBIDS")["error"]["details"]["field"] == (
            "image_to_video"
        )
        allowed = await _create(server, alice, {"prompt": "p", "duration": 8})
        assert allowed.status_code == 201, allowed.text
        listed = await server.client.get("/api/video/tasks", headers=alice)
        assert listed.json()["data"]["total"] == 1  # nothing refused was stored


async def test_replays_are_answered_and_remix_is_counted(tmp_path: Path, database_url: str) -> None:
    settings = make_settings(
        tmp_path,
        database_url,
        plans=plans(FREE={"max_running": 1, "tasks_per_day": 2}),
        default_plan="FREE",
        **FAST,
    )
    async with live_server(settings) as server:
        alice = await server.user("alice")
        finished = await finished_task(server, alice, "a lighthouse")  # 1 of 2 today
        key = {**alice, "Idempotency-Key": "k-1"}
        first = await _create(server, key)
        assert first.status_code == 201  # 2 of 2 today, 1 of 1 running

        # The same key again, also several at once: the first task, not a quota refusal.
        replays: list[httpx2.Response] = []

        async def replay() -> None:
            replays.append(await _create(server, key))

        async with trio.open_nursery() as nursery:
            for _ in range(5):
                nursery.start_soon(replay)
        for answer in replays:
            assert answer.status_code == 201, answer.text
            assert answer.headers["Idempotent-Replayed"] == "true"
            assert answer.json()["data"]["videoId"] == first.json()["data"]["videoId"]

        refused = await _create(server, {**alice, "Idempotency-Key": "k-2"})
        assert_error(refused, 429, "QUOTA_EXCEEDED")
        remix = await server.client.post(
            f"/api/video/tasks/{finished.video_id}/remix", json={"prompt": "at dawn"}, headers=alice
        )
        body = assert_error(remix, 429, "QUOTA_EXCEEDED")
        assert body["error"]["details"]["window"] == "24h"  # the longer wait of the two
        assert int(remix.headers["Retry-After"]) > 86000


async def test_the_operators_default_plan_applies_to_unlicensed_users_at_once(
    tmp_path: Path, database_url: str
) -> None:
    """`PUT /api/admin/config {defaultPlan}` changes what an unlicensed user may do, on the
    next create, without a restart (the settings' default only holds until one is stored)."""
    settings = make_settings(
        tmp_path,
        database_url,
        plans={**plans(FREE={"max_running": 1}), "OPEN": {}},
        default_plan="OPEN",
    )
    async with live_server(settings) as server:
        admin = await admin_headers(server, "root")
        alice = await server.user("alice")
        for i in range(2):  # OPEN: no limit
            assert (await _create(server, alice, {"prompt": f"fox {i}"})).status_code == 201
        info = await server.client.get("/api/license/info", headers=alice)
        assert info.json()["data"]["plan"]["name"] == "OPEN", info.text

        changed = await server.client.put(
            "/api/admin/config", json={"defaultPlan": "FREE"}, headers=admin
        )
        assert changed.status_code == 200, changed.text
        info = await server.client.get("/api/license/info", headers=alice)
        assert info.json()["data"]["plan"]["name"] == "FREE", info.text
        body = assert_error(await _create(server, alice), 429, "QUOTA_EXCEEDED")
        assert body["error"]["details"]["window"] == "running"
