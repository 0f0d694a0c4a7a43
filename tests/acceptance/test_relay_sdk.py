"""The official openai SDK, 3.x and 2.x, drives our OpenAI-compatible door with a personal key.

Each SDK runs `relay_sdk_session.py` in a subprocess against a real server (in-process
simulator, jobs 60x faster than real time): 3.x is the project's own dependency; 2.3.0 (which
sends JSON, not multipart, when there is no file) is installed once per virtualenv into a
folder of its own (`openai2_path`, from PyPI) and put first on PYTHONPATH. Then the server is asked
whether what the SDK saw is what it holds: the tasks, their order, the bytes of our copies.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import trio

from sora_actors.settings import Settings
from tests.conftest import make_settings
from tests.harness import LiveServer, live_server

SESSION = Path(__file__).with_name("relay_sdk_session.py")
# An early 2.x on purpose: up to some 2.x release, `videos.create` without a file sent JSON
# (later 2.x, like 3.x, always send multipart); 2.3.0 is one that sends JSON.
OPENAI2 = "openai==2.3.0"
# Jobs take ~1-3 s: long enough to delete one while it runs, short enough to poll.
PACE = {"simulator_time_scale": 60, "polling_speedup": 60}


def openai2_path() -> Path:
    """A folder holding openai 2.x and its dependencies, installed once per virtualenv (under
    it, so a clean clone's CI installs it by itself and reuses it afterwards)."""
    target = Path(sys.prefix) / "sora-test-cache" / OPENAI2.replace("==", "-")
    if (target / "openai").is_dir():
        return target
    staging = target.with_name(f"{target.name}.{uuid.uuid4().hex}")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--target", str(staging), OPENAI2],
        check=True,
        timeout=600,
    )
    try:
        staging.rename(target)  # whole or not at all; a concurrent install may have won
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
    return target


@pytest.fixture(scope="session")
def openai2() -> Path:
    """As for PostgreSQL: a laptop without PyPI skips, CI (which has it) fails."""
    try:
        return openai2_path()
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as error:
        message = f"could not install {OPENAI2} from PyPI: {error}"
        if os.environ.get("CI") == "true":
            pytest.fail(message + " (CI=true: the SDK 2.x run must happen)")
        pytest.skip(message)


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(tmp_path, database_url, **PACE)


async def personal_key(server: LiveServer, username: str) -> str:
    headers = await server.user(username)
    made = await server.client.post("/api/auth/api-keys", json={"name": "sdk"}, headers=headers)
    assert made.status_code == 201, made.text
    key: str = made.json()["data"]["key"]
    return key


async def run_session(server: LiveServer, key: str, pythonpath: Path | None) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI")}
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    base_url = f"{server.base_url}/api/relay/v1"
    with trio.fail_after(180):
        done = await trio.run_process(
            [sys.executable, str(SESSION), base_url, key],
            env=env,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    output = done.stdout.decode() + done.stderr.decode()
    assert done.returncode == 0, output
    result: dict[str, Any] = json.loads(done.stdout.decode().strip().splitlines()[-1])
    return result


async def check(server: LiveServer, out: dict[str, Any], username: str) -> None:
    """What the SDK saw against what the server holds."""
    plain, with_file, polled = out["plain"], out["with_file"], out["polled"]
    remix, doomed = out["remix"], out["doomed"]
    assert plain["object"] == "video" and plain["status"] == "queued"
    assert plain["seconds"] == "8" and plain["model"] == "sora-2" and plain["size"] == "720x1280"
    assert isinstance(plain["created_at"], int) and plain["completed_at"] is None
    assert with_file["size"] == "1280x720"
    assert polled["status"] == "completed" and polled["progress"] == 100
    assert polled["completed_at"] >= polled["created_at"]
    assert polled["expires_at"] > polled["completed_at"]  # our copy's retention
    assert out["retrieved"]["id"] == plain["id"] and out["retrieved"]["prompt"] == plain["prompt"]
    assert remix["remixed_from_video_id"] == polled["id"] and remix["seconds"] == "4"

    # Ordinary tasks of this user, the ids our videoIds; created in this order.
    storage = server.services.storage
    ids = [plain["id"], with_file["id"], polled["id"], remix["id"], doomed["id"]]
    tasks = [await storage.tasks.get(video_id) for video_id in ids]
    user = await storage.accounts.by_username(username)
    assert user is not None
    assert all(task is not None and task.user_id == user.id for task in tasks)
    # Listed in creation order (ties in the same millisecond: by id).
    ordered = [task.video_id for task in sorted(tasks, key=lambda t: (t.created_at, t.video_id))]
    assert sorted(ordered) == sorted(ids)
    # Listed without the two it deleted.
    kept = [video_id for video_id in ordered if video_id not in (polled["id"], doomed["id"])]
    assert out["listed_asc"] == kept
    assert out["listed_desc"] == kept[::-1]
    image = await storage.tasks.input_image(with_file["id"])
    assert image is not None and image[:2] == ("image/png", "ref.png")

    # The bytes are our stored copy's.
    records = await storage.content.records(polled["id"])
    assert out["video_sha256"] == records["video"].sha256
    assert out["thumbnail_sha256"] == records["thumbnail"].sha256
    status, body = out["spritesheet"]
    assert status == 404 and body["code"] == "content_not_found"

    # Delete: the running one was cancelled first; both are gone for the SDK (404 on
    # retrieve, content, remix, a second delete) but their rows stay, marked deleted.
    assert out["deleted"] == {"id": doomed["id"], "object": "video.deleted", "deleted": True}
    assert out["deleted_finished"] == {
        "id": polled["id"],
        "object": "video.deleted",
        "deleted": True,
    }
    missing = [404, "task_not_found"]
    assert out["after_delete"] == {
        "retrieve": missing,
        "content": missing,
        "remix": missing,
        "delete_again": missing,
    }
    cancelled = await storage.tasks.get(doomed["id"])
    assert cancelled is not None and cancelled.status == "CANCELLED"
    assert cancelled.deleted_at is not None
    finished = await storage.tasks.get(polled["id"])
    assert finished is not None and finished.status == "COMPLETED"
    assert finished.deleted_at is not None and finished.stored_variants == ()
    store = server.services.runtime.content.store
    for record in records.values():  # the files of our copy are gone
        assert await store.size(record.storage_key) is None

    assert out["wrong_key"] == [401, "invalid_api_key", "authentication_error"]
    assert out["unknown_video"] == [404, "task_not_found"]
    keys = await storage.api_keys.of_user(user.id)
    assert keys[0].last_used_at is not None


@pytest.mark.slow
async def test_openai_sdk_3_drives_the_door(server: LiveServer) -> None:
    key = await personal_key(server, "sdk3")
    out = await run_session(server, key, None)
    assert out["sdk"].startswith("3.")
    assert out["plain_content_type"].startswith("multipart/form-data")
    await check(server, out, "sdk3")


@pytest.mark.slow
async def test_openai_sdk_2_sends_json_and_drives_the_door(
    openai2: Path, tmp_path: Path, sqlite_url: str
) -> None:
    async with live_server(make_settings(tmp_path, sqlite_url, **PACE)) as server:
        key = await personal_key(server, "sdk2")
        out = await run_session(server, key, openai2)
        assert out["sdk"].startswith("2.")
        assert out["plain_content_type"] == "application/json"
        await check(server, out, "sdk2")
