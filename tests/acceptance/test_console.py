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


@pytest.fixture
def console_settings(tmp_path: Path, sqlite_url: str) -> Settings:
    return make_settings(
        tmp_path, sqlite_url, simulator_time_scale=TIME_SCALE, polling_speedup=TIME_SCALE
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
