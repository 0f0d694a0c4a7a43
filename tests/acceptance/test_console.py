"""The web console: served by the backend, and usable end to end in a real (headless) Chromium.

The browser tests drive the page the way a person would (forms, buttons) against a real
server whose upstream is the in-process simulator running 60x faster than real time, and
read back only what the page shows. They skip when Chromium or Playwright is missing
locally and fail under CI=true (see tests/browser/chromium.py).
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from sora_actors.settings import Settings
from tests.browser.chromium import require_browser, run_in_browser
from tests.conftest import make_settings
from tests.harness import LiveServer, assert_error, live_server

TIME_SCALE = 60.0
# A 2x2 PNG: the simulator checks the magic bytes of reference images.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAIAAAD91JpzAAAAFklEQVR4nGP8z8DAwMDAxMDAwMDAAAANHQEDasKb6QAAAABJRU5ErkJggg=="
)


# Given in full: a plan named like one in the shipped defaults is merged into that one.
UNLIMITED = {
    "max_running": 0,
    "tasks_per_day": 0,
    "tasks_per_30_days": 0,
    "max_duration_seconds": 0,
    "models": "*",
    "sizes": "*",
    "image_to_video": True,
}


@pytest.fixture
def console_settings(tmp_path: Path, sqlite_url: str) -> Settings:
    """Plans without limits (the journey makes several tasks) named as the operator sees them:
    FREE by default, PRO to switch to in the settings."""
    return make_settings(
        tmp_path,
        sqlite_url,
        simulator_time_scale=TIME_SCALE,
        polling_speedup=TIME_SCALE,
        plans={"FREE": UNLIMITED, "PRO": UNLIMITED},
        default_plan="FREE",
    )


@pytest.fixture
def chromium() -> str:
    """Checked before the server starts, so that a skip is a plain skip with its reason."""
    return require_browser()


@pytest.fixture
async def server(console_settings: Settings) -> AsyncIterator[LiveServer]:
    async with live_server(console_settings) as running:
        yield running


async def test_page_and_assets_are_served_with_their_types(server: LiveServer) -> None:
    page = await server.client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert '<script src="/static/app.js" defer></script>' in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for name, content_type in (
        ("app.js", "text/javascript; charset=utf-8"),
        ("admin.js", "text/javascript; charset=utf-8"),
        ("app.css", "text/css; charset=utf-8"),
        ("index.html", "text/html; charset=utf-8"),
    ):
        asset = await server.client.get(f"/static/{name}")
        assert asset.status_code == 200, name
        assert asset.headers["content-type"] == content_type
        assert asset.headers["x-content-type-options"] == "nosniff"
        assert (
            asset.content
            == (Path(__file__).parents[2] / "sora_actors/http/static" / name).read_bytes()
        )


@pytest.mark.parametrize(
    "path",
    [
        "/static/../console.py",
        "/static/..%2Fconsole.py",
        "/static/%2e%2e/%2e%2e/pyproject.toml",
        "/static/..%2F..%2F..%2Fpyproject.toml",
        "/static/./app.js/../../console.py",
        "/static/%2Fetc%2Fpasswd",
        "/static//etc/passwd",
        "/static/..\\console.py",
        "/static/console.py",
        "/static/missing.js",
        "/static/",
    ],
)
async def test_nothing_outside_the_static_folder_is_served(server: LiveServer, path: str) -> None:
    # Werkzeug may first redirect a doubled slash (308); wherever it leads is not a file.
    response = await server.client.get(path, follow_redirects=True)
    assert response.status_code == 404, (path, response.status_code)
    assert_error(response, 404, "NOT_FOUND")
    assert "blueprint" not in response.text and "[project]" not in response.text
    assert "root:" not in response.text


async def test_bad_credentials_and_duplicates_show_the_servers_message(
    chromium: str, server: LiveServer
) -> None:
    await server.register("taken")
    seen = await run_in_browser(
        "bad_credentials", server.base_url, _shot(server, "bad-credentials"), taken="taken"
    )
    # The duplicate's message is the server's own 409 message, shown as it is.
    clash = await server.client.post(
        "/api/auth/register", json={"username": "TAKEN", "password": "password-2"}
    )
    assert seen["duplicate"] == assert_error(clash, 409, "USERNAME_TAKEN")["message"]


async def test_register_submit_watch_live_progress_and_play(
    chromium: str, server: LiveServer
) -> None:
    """The whole journey in one browser (see scenarios.journey), then checked on the server."""
    seen = await run_in_browser("journey", server.base_url, _shot(server, "journey"))

    # The bar moved: intermediate values, never backwards, ending at 100.
    mine = [(status, value) for vid, status, value in seen["changes"] if vid == seen["video_id"]]
    values = [value for _, value in mine]
    assert any(0 < value < 100 for value in values), mine
    assert values == sorted(values), mine
    assert mine[-1] == ("COMPLETED", 100)
    # While offline the page could not know; it caught up after reconnecting.
    assert seen["stale_while_offline"] == "PROCESSING"
    assert seen["playing"]["width"] > 0 and seen["playing"]["duration"] > 0
    assert seen["playing"]["src"].startswith(server.base_url)

    # The page showed what the server holds.
    headers = {"Authorization": f"Bearer {await server.login('alice', 'correct horse')}"}
    listing = await server.client.get("/api/video/tasks", headers=headers)
    tasks = {task["prompt"]: task for task in listing.json()["data"]["tasks"]}
    assert tasks["A paper boat drifting down a rainy street"]["status"] == "COMPLETED"
    assert tasks["A slow sunrise over the mountains"]["status"] == "CANCELLED"
    failed = tasks["A storm over the sea #sim-fail"]
    assert failed["status"] == "FAILED"
    assert seen["failure_text"] == failed["errorMessage"]
    assert tasks["Make it night time"]["remixedFromVideoId"] == seen["video_id"]


async def test_reference_image_is_sent_as_multipart_input_reference(
    chromium: str, server: LiveServer, tmp_path: Path
) -> None:
    await server.register("bob")
    image = tmp_path / "reference.png"
    image.write_bytes(PNG)
    seen = await run_in_browser(
        "reference_image",
        server.base_url,
        _shot(server, "reference"),
        image=str(image),
        username="bob",
    )
    assert seen["status"] == 201
    assert seen["content_type"].startswith("multipart/form-data; boundary=")
    # The server stored exactly the file that was picked, as the task's input reference.
    stored = await server.services.storage.tasks.input_image(seen["video_id"])
    assert stored == ("image/png", "reference.png", PNG)


def _shot(server: LiveServer, name: str) -> Path:
    return server.running.services.settings.data_dir.parent / f"console-{name}.png"


async def test_admin_section_for_admins_and_notices_for_everyone(
    chromium: str, server: LiveServer
) -> None:
    from .admin_helpers import admin_headers

    admin = await admin_headers(server, "operator")
    await server.register("viewer")
    wrong = await server.client.post(
        "/api/auth/login", json={"username": "viewer", "password": "wrong-password"}
    )
    assert_error(wrong, 401, "INVALID_CREDENTIALS")
    seen = await run_in_browser(
        "admin_console",
        server.base_url,
        _shot(server, "admin"),
        admin="operator",
        user="viewer",
    )
    stats = (await server.client.get("/api/admin/statistics", headers=admin)).json()["data"]
    assert seen["figures"] == {
        "users-total": str(stats["users"]["total"]),
        "tasks-total": str(stats["tasks"]["total"]),
        "licenses-total": str(stats["licenses"]["total"]),
    }
    assert seen["new_users_bars"] == 30 and seen["status_bars"] == 5
    assert seen["logged"] == [["login_failed", "viewer"]]
    assert seen["registration_open"] is True
    assert seen["refused"].startswith("defaultPlan")
    # What the page saved is what the server holds, and what the USER was told.
    config = (await server.client.get("/api/admin/config", headers=admin)).json()["data"]
    assert config == {
        "registrationOpen": True,
        "maintenance": {"enabled": True, "message": "Down for a disk swap until 15:00 UTC."},
        "defaultPlan": "PRO",
        "announcement": "New models arrive on Monday.",
    }
    assert seen["user_sees_views"] is False and seen["user_sees_admin"] is False
    assert seen["create_error"] == "Down for a disk swap until 15:00 UTC."
    viewer = {"Authorization": f"Bearer {await server.login('viewer')}"}
    listing = await server.client.get("/api/video/tasks", headers=viewer)
    assert listing.json()["data"]["total"] == 0


async def test_api_keys_are_created_shown_once_listed_and_revoked(
    chromium: str, server: LiveServer
) -> None:
    await server.register("carol")
    seen = await run_in_browser(
        "api_keys", server.base_url, _shot(server, "api-keys"), username="carol"
    )
    laptop, ci = seen["shown"]
    assert laptop.startswith("sk-sora-") and ci.startswith("sk-sora-") and laptop != ci
    assert seen["base_url_hint"] == f"{server.base_url}/api/relay/v1"
    # Listed by prefix and last four, never whole (not even right after creating it).
    for key in (laptop, ci):
        assert any(key[:12] in line and key[-4:] in line for line in seen["listed"])
        assert all(key not in line for line in seen["listed"] + seen["after_revoke"])
        assert key not in seen["page_text"]
    # What the page revoked is revoked on the server: the key no longer works, the other does.
    assert (await server.client.get("/api/auth/me", headers=_bearer(laptop))).status_code == 401
    me = await server.client.get("/api/auth/me", headers=_bearer(ci))
    assert me.status_code == 200 and me.json()["data"]["username"] == "carol"
    headers = {"Authorization": f"Bearer {await server.login('carol')}"}
    listing = (await server.client.get("/api/auth/api-keys", headers=headers)).json()["data"]
    revoked = {key["name"]: key["revokedAt"] is not None for key in listing["keys"]}
    assert revoked == {"laptop": True, "ci": False}


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def _admin_view_of(server: LiveServer, admin: dict[str, str], username: str) -> Any:
    """The admin API's record of one account (found by the same search the page uses)."""
    found = await server.client.get(f"/api/admin/users?q={username}", headers=admin)
    (user,) = [item for item in found.json()["data"]["items"] if item["username"] == username]
    return user


async def test_admin_searches_bans_unbans_promotes_and_deactivates_users(
    chromium: str, server: LiveServer
) -> None:
    from .admin_helpers import admin_headers

    admin = await admin_headers(server, "operator")
    dave = await server.user("dave")
    erin = await server.user("erin")
    seen = await run_in_browser(
        "admin_ban_user", server.base_url, _shot(server, "ban"), admin="operator", user="dave"
    )
    assert sorted(seen["everyone"]) == ["dave", "erin", "operator"]
    assert seen["found"] == ["dave"]
    # What the page banned is banned on the server: the session and a new login are refused.
    me = await server.client.get("/api/auth/me", headers=dave)
    assert_error(me, 401, "ACCOUNT_BANNED")
    login = await server.client.post(
        "/api/auth/login", json={"username": "dave", "password": "password-1"}
    )
    assert_error(login, 403, "ACCOUNT_BANNED")
    assert (await _admin_view_of(server, admin, "dave"))["banned"] is True

    seen = await run_in_browser(
        "admin_change_users",
        server.base_url,
        _shot(server, "users"),
        admin="operator",
        banned="dave",
        other="erin",
    )
    assert sorted(seen["admins"]) == ["erin", "operator"]
    assert seen["inactive"] == ["erin"] and seen["role_shown"] == "ADMIN"
    # Unbanned: dave logs in again. Erin is an ADMIN whose account is switched off.
    again = {"Authorization": f"Bearer {await server.login('dave')}"}
    assert (await server.client.get("/api/auth/me", headers=again)).status_code == 200
    assert_error(await server.client.get("/api/auth/me", headers=erin), 401, "ACCOUNT_DISABLED")
    record = await _admin_view_of(server, admin, "erin")
    assert (record["role"], record["isActive"], record["banned"]) == ("ADMIN", False, False)
    logs = await server.client.get("/api/admin/logs?action=admin_user_ban", headers=admin)
    assert [entry["details"]["banned"] for entry in logs.json()["data"]["items"]] == [
        False,
        True,
    ]


async def test_admin_generates_a_licence_shown_once_and_revokes_it(
    chromium: str, server: LiveServer
) -> None:
    from .admin_helpers import admin_headers

    admin = await admin_headers(server, "operator")
    seen = await run_in_browser(
        "admin_licences", server.base_url, _shot(server, "licences"), admin="operator"
    )
    key = seen["shown"].strip()
    assert key.startswith("SORA-") and "\n" not in key
    # Listed masked from the start (right after generating too), and never whole after.
    for text in (seen["listed"], seen["after_reload"]):
        assert key not in text and key[-4:] in text and "PRO" in text
    assert key not in seen["page_text"]
    listing = await server.client.get("/api/admin/licenses", headers=admin)
    (licence,) = listing.json()["data"]["items"]
    assert licence["id"] == seen["id"] and licence["licenseKey"] in seen["after_reload"]
    assert (licence["status"], licence["isActive"]) == ("REVOKED", False)
    assert seen["state_shown"] == "revoked"
    # Revoked in the page: the key can no longer be activated.
    user = await server.user("frank")
    refused = await server.client.post(
        "/api/license/activate", json={"licenseKey": key}, headers=user
    )
    assert_error(refused, 403, "LICENSE_REVOKED")


# A limited default plan and one licence plan without limits: the card shows both kinds.
PLANS = {
    "FREE": {"max_running": 2, "tasks_per_day": 5, "tasks_per_30_days": 30},
    "ENTERPRISE": {},
}


async def test_a_user_sees_their_plan_and_usage_and_a_licences_plan(
    chromium: str, tmp_path: Path, sqlite_url: str
) -> None:
    settings = make_settings(
        tmp_path,
        sqlite_url,
        simulator_time_scale=TIME_SCALE,
        polling_speedup=TIME_SCALE,
        plans=PLANS,
        default_plan="FREE",
    )
    async with live_server(settings) as server:
        await _plan_card_follows_usage_and_licence(server)


async def _plan_card_follows_usage_and_licence(server: LiveServer) -> None:
    from .admin_helpers import admin_headers

    admin = await admin_headers(server, "operator")
    user = await server.user("grace")
    seen = await run_in_browser(
        "plan_card",
        server.base_url,
        _shot(server, "plan"),
        username="grace",
        prompt="A kite over the dunes",
    )
    free = server.running.services.settings.plans["FREE"]
    assert seen["before"]["name"] == "FREE"
    assert seen["before"]["usage"] == {
        "running": f"0 of {free.max_running}",
        "day": f"0 of {free.tasks_per_day}",
        "thirty-days": f"0 of {free.tasks_per_30_days}",
    }
    assert seen["after"]["usage"]["day"] == f"1 of {free.tasks_per_day}"
    assert seen["after"]["usage"]["thirty-days"] == f"1 of {free.tasks_per_30_days}"
    assert seen["before"]["licence"] == "No licence: the default plan applies."

    generated = await server.client.post(
        "/api/admin/license/generate", json={"type": "ENTERPRISE"}, headers=admin
    )
    key = generated.json()["data"]["licenseKey"]
    activated = await server.client.post(
        "/api/license/activate", json={"licenseKey": key}, headers=user
    )
    assert activated.status_code == 200, activated.text
    seen = await run_in_browser(
        "plan_card", server.base_url, _shot(server, "plan-licensed"), username="grace"
    )
    card = seen["before"]
    info = (await server.client.get("/api/license/info", headers=user)).json()["data"]
    assert card["name"] == info["plan"]["name"] == "ENTERPRISE"
    # ENTERPRISE counts have no limit: the figure alone; the key only masked.
    assert card["usage"]["day"] == card["usage"]["thirty-days"] == "1"
    assert info["license"]["licenseKey"] in card["licence"] and key not in card["licence"]
    assert "ENTERPRISE" in card["licence"] and "active" in card["licence"]
