"""Licences over real HTTP on SQLite and PostgreSQL: the admin routes, activation,
validation, the caller's plan and usage, expiry and revocation, and that a key is shown
once and then nowhere (answers, logs, activity log, database)."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import httpx2
import pytest

from sora_actors import licence_keys
from sora_actors.settings import Settings
from tests.conftest import make_settings
from tests.harness import LiveServer, assert_error, live_server

from .licensing import VirtualWall, admin, generate, plans, virtual_wall

KEY = re.compile(r"^SORA(-[0-9A-HJKMNP-TV-Z]{5}){5}$")
MASKED = re.compile(r"^SORA-…-[0-9A-HJKMNP-TV-Z]{4}$")


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(
        tmp_path,
        database_url,
        plans=plans(),
        default_plan="FREE",
        license_checks_per_address=1000,
    )


@pytest.fixture
def wall(monkeypatch: pytest.MonkeyPatch) -> VirtualWall:
    return virtual_wall(monkeypatch)


async def test_admin_routes_need_an_active_admin(server: LiveServer) -> None:
    user = await server.user("plain")
    routes = [
        ("GET", "/api/admin/licenses", None),
        ("POST", "/api/admin/license/generate", {"type": "PRO"}),
        ("POST", "/api/admin/licenses/whatever/revoke", None),
    ]
    for method, path, body in routes:
        anonymous = await server.client.request(method, path, json=body)
        assert_error(anonymous, 401, "AUTH_REQUIRED")
        forbidden = await server.client.request(method, path, json=body, headers=user)
        assert_error(forbidden, 403, "FORBIDDEN")
    root = await admin(server)
    listed = await server.client.get("/api/admin/licenses", headers=root)
    assert listed.status_code == 200
    assert listed.json()["data"] == {"items": [], "total": 0, "page": 1, "pageSize": 20}


async def test_generate_list_filter_and_revoke(server: LiveServer, database_url: str) -> None:
    root = await admin(server)
    one = await generate(server, root, "PRO", durationDays=30)
    assert KEY.fullmatch(one["licenseKey"]), one
    assert set(one) == {"type", "durationDays", "count", "licenseKey", "id"}
    assert (one["type"], one["durationDays"], one["count"]) == ("PRO", 30, 1)
    many = await generate(server, root, "TRIAL", count=3)
    assert set(many) == {"type", "count", "licenseKeys", "ids"}
    assert len(set(many["licenseKeys"])) == 3 and all(KEY.fullmatch(k) for k in many["licenseKeys"])

    page = (await server.client.get("/api/admin/licenses?pageSize=2", headers=root)).json()["data"]
    assert (page["total"], page["page"], page["pageSize"], len(page["items"])) == (4, 1, 2, 2)
    pro = await server.client.get("/api/admin/licenses?type=pro", headers=root)
    [item] = pro.json()["data"]["items"]
    assert item == {
        "id": one["id"],
        "licenseKey": "SORA-…-" + one["licenseKey"][-4:],
        "type": "PRO",
        "status": "UNUSED",
        "userId": None,
        "isActive": True,
        "deviceId": None,
        "features": [],
        "durationDays": 30,
        "activatedAt": None,
        "expiresAt": None,
        "createdAt": item["createdAt"],
        "user": None,
    }

    # Activated, it shows its user; revoked, its state.
    await server.register("alice", email="alice@example.com")
    alice = {"Authorization": f"Bearer {await server.login('alice')}"}
    activated = await server.client.post(
        "/api/license/activate", json={"licenseKey": one["licenseKey"]}, headers=alice
    )
    assert activated.status_code == 200, activated.text
    active = await server.client.get("/api/admin/licenses?status=ACTIVE", headers=root)
    [item] = active.json()["data"]["items"]
    assert item["user"] == {"username": "alice", "email": "alice@example.com"}
    assert item["status"] == "ACTIVE" and item["expiresAt"] and item["activatedAt"]

    revoked = await server.client.post(f"/api/admin/licenses/{one['id']}/revoke", headers=root)
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["data"]["isActive"] is False
    assert revoked.json()["data"]["status"] == "REVOKED"
    again = await server.client.post(f"/api/admin/licenses/{one['id']}/revoke", headers=root)
    assert again.status_code == 200 and "already" in again.json()["message"]
    listed = await server.client.get("/api/admin/licenses?status=revoked", headers=root)
    assert [item["id"] for item in listed.json()["data"]["items"]] == [one["id"]]
    unused = await server.client.get("/api/admin/licenses?status=UNUSED", headers=root)
    assert sorted(i["id"] for i in unused.json()["data"]["items"]) == sorted(many["ids"])
    assert_error(
        await server.client.post("/api/admin/licenses/nope/revoke", headers=root),
        404,
        "LICENSE_NOT_FOUND",
    )

    # Logged with the admin's id, once per change, never with a key.
    root_id = (await server.client.get("/api/auth/me", headers=root)).json()["data"]["id"]
    log = await server.services.storage.accounts.activities(limit=50)
    actions = [(entry["action"], entry["user_id"]) for entry in log]
    assert actions.count(("admin_license_generate", root_id)) == 2
    assert actions.count(("admin_license_revoke", root_id)) == 1
    alice_id = (await server.client.get("/api/auth/me", headers=alice)).json()["data"]["id"]
    assert actions.count(("activate_license", alice_id)) == 1


async def test_a_thousand_keys_at_once(server: LiveServer) -> None:
    root = await admin(server)
    made = await generate(server, root, "ENTERPRISE", count=1000, durationDays=365)
    assert len(set(made["licenseKeys"])) == 1000 and len(set(made["ids"])) == 1000
    listed = await server.client.get("/api/admin/licenses?type=ENTERPRISE", headers=root)
    assert listed.json()["data"]["total"] == 1000
    last = await server.client.get("/api/admin/licenses?page=50&pageSize=20", headers=root)
    assert len(last.json()["data"]["items"]) == 20
    masked = {item["licenseKey"] for item in last.json()["data"]["items"]}
    assert all(MASKED.fullmatch(key) for key in masked)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"type": "GOLD"}, "type"),
        ({"type": "PRO", "count": 1001}, "count"),
        ({"type": "PRO", "count": 0}, "count"),
        ({"type": "PRO", "count": "2"}, "count"),
        ({"type": "PRO", "durationDays": 0}, "durationDays"),
        ({}, "type"),
    ],
)
async def test_generate_refuses_bad_requests(
    server: LiveServer, body: dict[str, Any], field: str
) -> None:
    root = await admin(server)
    response = await server.client.post("/api/admin/license/generate", json=body, headers=root)
    error = assert_error(response, 400, "VALIDATION_ERROR")
    assert field in [item["field"] for item in error["error"]["details"]]
    bad_filter = await server.client.get("/api/admin/licenses?status=LOST", headers=root)
    assert_error(bad_filter, 400, "VALIDATION_ERROR")


async def test_activate_validate_info_and_bound_elsewhere(server: LiveServer) -> None:
    root = await admin(server)
    key = (await generate(server, root, "PRO"))["licenseKey"]
    alice, bob = await server.user("alice"), await server.user("bob")

    async def validate(licence_key: str, device: str | None = None) -> str:
        body = {"licenseKey": licence_key, **({"deviceId": device} if device else {})}
        response = await server.client.post("/api/license/validate", json=body)  # no login
        assert response.status_code == 200, response.text
        data = response.json()["data"]
        assert set(data) == {"valid", "status"} and data["valid"] == (data["status"] == "VALID")
        return str(data["status"])

    assert await validate(key) == "VALID"  # not activated yet: usable
    assert await validate(licence_keys.generate()) == "UNKNOWN"
    assert await validate(key.lower().replace("-", " ")) == "VALID"  # however it is typed
    assert_error(
        await server.client.post("/api/license/validate", json={"licenseKey": "SORA-12"}),
        400,
        "INVALID_LICENSE_KEY",
    )

    before = (await server.client.get("/api/license/info", headers=alice)).json()["data"]
    assert before["license"] is None and before["plan"]["name"] == "FREE"
    activated = await server.client.post(
        "/api/license/activate", json={"licenseKey": key, "deviceId": "laptop"}, headers=alice
    )
    assert activated.status_code == 200, activated.text
    info = activated.json()["data"]
    assert info["license"]["licenseKey"] == "SORA-…-" + key[-4:]
    assert MASKED.fullmatch(info["license"]["licenseKey"])
    assert info["license"]["status"] == "ACTIVE" and info["license"]["deviceId"] == "laptop"
    assert info["plan"] == {
        "name": "PRO",
        "maxRunning": 5,
        "tasksPerDay": None,
        "tasksPer30Days": None,
        "maxDurationSeconds": None,
        "models": ["sora-2", "sora-2-pro"],
        "sizes": "*",
        "imageToVideo": True,
    }
    assert info["usage"] == {"running": 0, "tasksLast24Hours": 0, "tasksLast30Days": 0}

    assert await validate(key, "laptop") == "VALID"
    assert await validate(key, "phone") == "BOUND_ELSEWHERE"
    assert await validate(key) == "BOUND_ELSEWHERE"  # bound to a device: name it

    for who, device in ((bob, None), (bob, "laptop"), (alice, "phone")):
        body = {"licenseKey": key, **({"deviceId": device} if device else {})}
        refused = await server.client.post("/api/license/activate", json=body, headers=who)
        assert_error(refused, 409, "LICENSE_BOUND_ELSEWHERE")
    same = await server.client.post(
        "/api/license/activate", json={"licenseKey": key, "deviceId": "laptop"}, headers=alice
    )
    assert same.status_code == 200 and "already" in same.json()["message"]
    unknown = await server.client.post(
        "/api/license/activate", json={"licenseKey": licence_keys.generate()}, headers=alice
    )
    assert_error(unknown, 404, "LICENSE_NOT_FOUND")
    anonymous = await server.client.post("/api/license/activate", json={"licenseKey": key})
    assert_error(anonymous, 401, "AUTH_REQUIRED")
    assert_error(await server.client.get("/api/license/info"), 401, "AUTH_REQUIRED")

    # The plan applies: sora-2-pro for alice (PRO), not for bob (FREE); both see usage.
    made = await server.client.post(
        "/api/video/tasks", json={"prompt": "p", "model": "sora-2-pro"}, headers=alice
    )
    assert made.status_code == 201, made.text
    assert_error(
        await server.client.post(
            "/api/video/tasks", json={"prompt": "p", "model": "sora-2-pro"}, headers=bob
        ),
        403,
        "PLAN_FORBIDS",
    )
    me = (await server.client.get("/api/auth/me", headers=alice)).json()["data"]
    assert me["plan"]["name"] == "PRO"
    assert me["usage"]["tasksLast24Hours"] == 1 and me["usage"]["tasksLast30Days"] == 1
    info = (await server.client.get("/api/license/info", headers=alice)).json()["data"]
    assert info["usage"]["tasksLast24Hours"] == 1
    bob_me = (await server.client.get("/api/auth/me", headers=bob)).json()["data"]
    assert bob_me["plan"]["name"] == "FREE" and bob_me["usage"]["tasksLast30Days"] == 0

    log = await server.services.storage.accounts.activities(limit=50)
    [entry] = [entry for entry in log if entry["action"] == "activate_license"]
    assert entry["user_id"] == me["id"] and '"deviceId": "laptop"' in entry["details"]


async def test_expired_licence_falls_back_to_the_default_plan(
    server: LiveServer, wall: VirtualWall
) -> None:
    root = await admin(server)
    key = (await generate(server, root, "PRO", durationDays=1))["licenseKey"]
    alice = await server.user("alice")
    activated = await server.client.post(
        "/api/license/activate", json={"licenseKey": key}, headers=alice
    )
    assert activated.status_code == 200, activated.text
    assert activated.json()["data"]["plan"]["name"] == "PRO"
    pro = {"prompt": "p", "model": "sora-2-pro"}

    wall.advance(86400 - 0.001)  # the last millisecond of its day
    assert (
        await server.client.post("/api/video/tasks", json=pro, headers=alice)
    ).status_code == 201
    wall.advance(0.001)
    info = (await server.client.get("/api/license/info", headers=alice)).json()["data"]
    assert info["license"]["status"] == "EXPIRED" and info["plan"]["name"] == "FREE"
    refused = await server.client.post("/api/video/tasks", json=pro, headers=alice)
    assert_error(refused, 403, "PLAN_FORBIDS")
    check = await server.client.post("/api/license/validate", json={"licenseKey": key})
    assert check.json()["data"] == {"valid": False, "status": "EXPIRED"}
    again = await server.client.post(
        "/api/license/activate", json={"licenseKey": key}, headers=alice
    )
    assert_error(again, 403, "LICENSE_EXPIRED")


async def test_revoking_stops_the_next_create_at_once(server: LiveServer) -> None:
    root = await admin(server)
    made = await generate(server, root, "PRO")
    alice = await server.user("alice")
    activated = await server.client.post(
        "/api/license/activate", json={"licenseKey": made["licenseKey"]}, headers=alice
    )
    assert activated.status_code == 200, activated.text
    pro = {"prompt": "p", "model": "sora-2-pro"}
    assert (
        await server.client.post("/api/video/tasks", json=pro, headers=alice)
    ).status_code == 201

    revoked = await server.client.post(f"/api/admin/licenses/{made['id']}/revoke", headers=root)
    assert revoked.status_code == 200
    refused = await server.client.post("/api/video/tasks", json=pro, headers=alice)
    body = assert_error(refused, 403, "PLAN_FORBIDS")
    assert body["error"]["details"] == {
        "plan": "FREE",
        "field": "model",
        "value": "sora-2-pro",
        "allowed": ["sora-2"],
    }
    check = await server.client.post(
        "/api/license/validate", json={"licenseKey": made["licenseKey"]}
    )
    assert check.json()["data"] == {"valid": False, "status": "REVOKED"}
    again = await server.client.post(
        "/api/license/activate", json={"licenseKey": made["licenseKey"]}, headers=alice
    )
    assert_error(again, 403, "LICENSE_REVOKED")
    info = (await server.client.get("/api/license/info", headers=alice)).json()["data"]
    assert info["license"]["status"] == "REVOKED" and info["plan"]["name"] == "FREE"


async def _dump(conn: Any) -> str:
    rows = []
    for table in ("licenses", "activity_log", "users", "video_tasks"):
        rows += [dict(row._mapping) for row in await conn.fetch_all(f"SELECT * FROM {table}")]
    return repr(rows)


async def test_a_key_is_shown_once_and_then_nowhere(
    server: LiveServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    answers: list[str] = []

    async def keep(response: httpx2.Response) -> None:
        await response.aread()
        answers.append(response.text)

    root = await admin(server)
    alice = await server.user("alice")
    one = await generate(server, root, "PRO")
    many = await generate(server, root, "TRIAL", count=2)
    keys = [one["licenseKey"], *many["licenseKeys"]]
    server.client.event_hooks["response"].append(keep)  # every answer from here on

    for key in keys:
        await server.client.post("/api/license/validate", json={"licenseKey": key})
    await server.client.post("/api/license/activate", json={"licenseKey": keys[0]}, headers=alice)
    await server.client.post(
        "/api/license/activate", json={"licenseKey": keys[1], "deviceId": "d"}, headers=alice
    )
    await server.client.post("/api/license/activate", json={"licenseKey": keys[0]}, headers=root)
    await server.client.get("/api/license/info", headers=alice)
    await server.client.get("/api/auth/me", headers=alice)
    for status in ("", "?status=ACTIVE", "?type=TRIAL"):
        await server.client.get(f"/api/admin/licenses{status}", headers=root)
    await server.client.post(f"/api/admin/licenses/{one['id']}/revoke", headers=root)
    await server.client.get("/api/admin/licenses", headers=root)
    assert len(answers) == 13 and all(answer.startswith("{") for answer in answers)

    stored = await server.services.storage.database.run(_dump)
    logged = caplog.text + "".join(repr(record.__dict__) for record in caplog.records)
    ours = "".join(
        repr(record.__dict__)
        for record in caplog.records
        if not record.name.startswith(("databases", "aiosqlite", "asyncpg"))
    )
    for key in keys:
        plain = licence_keys.normalise(key)
        digest = licence_keys.digest(key)
        for answer in answers:
            assert plain not in answer.replace("-", "") and digest not in answer
        assert plain not in logged.replace("-", "")
        # The hash only where the database drivers print each statement's parameters at
        # DEBUG (password hashes too; the service logs at INFO).
        assert digest not in ours
        assert plain not in stored  # only the hash is kept
        assert stored.count(digest) == 1  # in its licence row, nowhere else


async def test_key_checks_are_limited_per_address(tmp_path: Path, database_url: str) -> None:
    limited = make_settings(
        tmp_path, database_url, license_checks_per_address=3, license_checks_period_seconds=60
    )
    async with live_server(limited) as server:
        alice = await server.user("alice")
        guesses = [licence_keys.generate() for _ in range(4)]
        for guess in guesses[:2]:
            response = await server.client.post("/api/license/validate", json={"licenseKey": guess})
            assert response.json()["data"]["status"] == "UNKNOWN"
        activate = await server.client.post(
            "/api/license/activate", json={"licenseKey": guesses[2]}, headers=alice
        )
        assert_error(activate, 404, "LICENSE_NOT_FOUND")  # the third check
        refused = await server.client.post("/api/license/validate", json={"licenseKey": guesses[3]})
        assert_error(refused, 429, "TOO_MANY_LICENSE_CHECKS")
        # 3 per 60 s: the next place is 20 s after the first (a real-time test: the exact
        # figure is the rate limiter's, asserted in virtual time in tests/unit/test_limits).
        assert 1 <= int(refused.headers["Retry-After"]) <= 20
        also = await server.client.post(
            "/api/license/activate", json={"licenseKey": guesses[3]}, headers=alice
        )
        assert_error(also, 429, "TOO_MANY_LICENSE_CHECKS")
