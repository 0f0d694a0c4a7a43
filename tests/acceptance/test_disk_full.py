"""Full disks, for real: the SQLite file or the content store on a small tmpfs, filled to the
last byte, then given space back. And a fatal error: the process must exit, not hang.

The database part runs on SQLite only: a full disk under a real PostgreSQL server is not
practical here (its DiskFullError is classified in tests/unit/test_storage_errors.py).
"""

from __future__ import annotations

import re
import sqlite3
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
import trio

from sora_actors.upstream.fake.media import media_sha256
from tests.acceptance.test_content import FAST, until
from tests.conftest import make_settings
from tests.diskspace import fill, free, small_disk
from tests.harness import LiveServer, assert_error, live_server
from tests.processes import free_port, serve, simulator, wait_healthy


async def _health(server: LiveServer) -> dict[str, Any]:
    response = await server.client.get("/health")
    assert response.status_code == 200, response.text
    report: dict[str, Any] = response.json()["data"]
    return report


async def _gauge(server: LiveServer, name: str) -> float:
    text = (await server.client.get("/metrics")).text
    match = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    assert match, f"{name} missing from /metrics"
    return float(match.group(1))


async def _create(server: LiveServer, headers: dict[str, str], prompt: str) -> httpx2.Response:
    return await server.client.post("/api/video/tasks", json={"prompt": prompt}, headers=headers)


# -- the database's disk ------------------------------------------------------------------


@pytest.fixture
async def on_small_disk(tmp_path: Path) -> AsyncIterator[tuple[LiveServer, Path]]:
    with small_disk(tmp_path / "disk") as disk:
        settings = make_settings(
            tmp_path,
            f"sqlite+aiosqlite:///{disk / 'sora.db'}",
            content_dir=str(tmp_path / "content"),
            # Short leases: the claim loop rewrites them every moment, full disk or not.
            lease_seconds=1.0,
            lease_heartbeat_seconds=0.3,
            claim_interval_seconds=0.1,
        )
        async with live_server(settings) as server:
            yield server, disk


async def test_a_full_database_disk_answers_507_and_recovers(
    on_small_disk: tuple[LiveServer, Path],
) -> None:
    server, disk = on_small_disk
    alice = await server.user("alice")
    acknowledged = []
    for n in range(3):
        response = await _create(server, alice, f"before {n}")
        assert response.status_code == 201, response.text
        acknowledged.append(response.json()["data"]["videoId"])

    fill(disk)
    # SQLite may still fit a write into pages it holds already; soon every create is refused.
    refused = 0
    for n in range(50):
        response = await _create(server, alice, f"while full {n}")
        if response.status_code == 201:
            acknowledged.append(response.json()["data"]["videoId"])
            continue
        body = assert_error(response, 507, "STORAGE_FULL")
        assert response.headers["Retry-After"].isdigit()
        assert "full" in body["message"]
        refused += 1
        if refused == 3:
            break
    assert refused == 3

    report = await _health(server)
    assert report["status"] == "degraded"
    assert report["database"]["status"] == "full"
    assert report["database"]["fullSince"].endswith("Z")
    assert await _gauge(server, "sora_storage_full") == 1

    # The claim loop keeps writing leases into the full database for a while: the runtime
    # must survive it (it died here before), and reads still work.
    await trio.sleep(1.5)
    assert server.services.runtime.supervisor.statistics().running >= 1
    listed = await server.client.get("/api/video/tasks", headers=alice)
    assert listed.status_code == 200, listed.text

    free(disk)
    report = await _health(server)
    assert report["status"] == "ok" and report["database"]["status"] == "ok"
    assert await _gauge(server, "sora_storage_full") == 0
    after = await _create(server, alice, "after the disk was freed")
    assert after.status_code == 201, after.text
    acknowledged.append(after.json()["data"]["videoId"])

    # Nothing acknowledged was lost, and nothing refused was stored.
    page = await server.client.get("/api/video/tasks?pageSize=100", headers=alice)
    stored = {task["videoId"]: task["prompt"] for task in page.json()["data"]["tasks"]}
    assert set(acknowledged) == set(stored)
    assert server.services.runtime.supervisor.statistics().crashes == 0


# -- the content store's disk -------------------------------------------------------------


def _partials(root: Path) -> list[Path]:
    return sorted(root.rglob("*.part"))


async def test_a_full_content_store_waits_for_space_then_completes(tmp_path: Path) -> None:
    """Finished videos that find no room wait (PENDING_SPACE) instead of failing; once space
    returns they are stored and the tasks complete, with no half-written files left."""
    with small_disk(tmp_path / "content", size="2m") as disk:
        settings = make_settings(
            tmp_path,
            f"sqlite+aiosqlite:///{tmp_path / 'sora.db'}",
            content_dir=str(disk),
            content_space_retry_seconds=0.2,
            content_space_retry_max_seconds=0.5,
            **FAST,
        )
        async with live_server(settings) as server:
            alice = await server.user("alice")
            fill(disk)
            ids = []
            for n in range(5):
                response = await _create(server, alice, f"a kite over dunes {n}")
                assert response.status_code == 201, response.text
                ids.append(response.json()["data"]["videoId"])

            with trio.fail_after(30):
                while True:
                    tasks = [
                        (await server.client.get(f"/api/video/tasks/{i}", headers=alice)).json()[
                            "data"
                        ]
                        for i in ids
                    ]
                    if all(task["contentStatus"] == "PENDING_SPACE" for task in tasks):
                        break
                    assert not any(task["status"] == "FAILED" for task in tasks), tasks
                    await trio.sleep(0.1)
            assert {task["status"] for task in tasks} == {"PROCESSING"}
            assert all(task["videoUrl"] is None for task in tasks)

            report = await _health(server)
            assert report["status"] == "degraded"
            assert report["content"]["status"] == "full"
            assert report["content"]["pendingSpace"] == len(ids)
            assert await _gauge(server, "sora_content_store_full") == 1
            assert await _gauge(server, "sora_content_pending_space") == len(ids)
            # A retry under way holds an empty temp file for a moment; none may stay.
            seen = set(_partials(disk))
            await trio.sleep(1.5)
            assert not seen & set(_partials(disk))

            free(disk)
            for video_id in ids:
                done = await until(server, alice, video_id, "COMPLETED", "FAILED", "CANCELLED")
                assert done["status"] == "COMPLETED", done
                assert done["contentStatus"] == "STORED"
                video = await server.client.get(done["videoUrl"])
                assert video.status_code == 200
                assert _sha(video.content) == media_sha256("video")

            report = await _health(server)
            assert report["status"] == "ok" and report["content"]["status"] == "ok"
            assert report["content"]["pendingSpace"] == 0
            assert await _gauge(server, "sora_content_store_full") == 0
            assert _partials(disk) == []
            assert server.services.runtime.supervisor.statistics().crashes == 0

            # A lost copy fetched again on request, with no room for it: 507, then it works.
            lost = ids[0]
            for stored in (disk / lost).iterdir():
                stored.unlink()
            fill(disk)
            refresh = f"/api/video/tasks/{lost}/refresh-url"
            assert_error(await server.client.post(refresh, headers=alice), 507, "STORAGE_FULL")
            assert _partials(disk) == []
            free(disk)
            again = await server.client.post(refresh, headers=alice)
            assert again.status_code == 200, again.text
            video = await server.client.get(again.json()["data"]["videoUrl"])
            assert _sha(video.content) == media_sha256("video")


def _sha(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


# -- a fatal error ------------------------------------------------------------------------

EXIT_BOUND_S = 20.0


async def test_a_fatal_error_ends_the_process_promptly(tmp_path: Path) -> None:
    """A `serve` process whose runtime dies must exit non-zero, not linger with its port
    closed (a supervisor such as systemd restarts only a process that exits).

    First a disk-full spell makes a COMMIT fail (which used to leave aiosqlite's worker
    thread running for ever); then the database loses a table under the running server (an
    operator's mistake, a bad restore): the claim loop's next statement fails, a bug by
    every classification, and the runtime stops."""
    with small_disk(tmp_path / "disk") as disk, simulator() as upstream:
        port = free_port()
        database = disk / "sora.db"
        process = serve(
            port,
            tmp_path / "data",
            f"sqlite+aiosqlite:///{database}",
            upstream,
            "sk-test",
            claim_interval_seconds="0.2",
            lease_seconds="1",
        )
        try:
            base = f"http://127.0.0.1:{port}"
            await wait_healthy(base)
            async with httpx2.AsyncClient(base_url=base, timeout=10) as client:
                await client.post(
                    "/api/auth/register", json={"username": "bob", "password": "password-1"}
                )
                login = await client.post(
                    "/api/auth/login", json={"username": "bob", "password": "password-1"}
                )
                bob = {"Authorization": f"Bearer {login.json()['data']['token']}"}
                created = await client.post("/api/video/tasks", json={"prompt": "x"}, headers=bob)
                assert created.status_code == 201, created.text
                fill(disk)
                statuses = [
                    (
                        await client.post("/api/video/tasks", json={"prompt": "y"}, headers=bob)
                    ).status_code
                    for _ in range(5)
                ]
                assert any(status != 201 for status in statuses), statuses  # a COMMIT failed
                free(disk)
                assert process.poll() is None  # a full disk is not fatal

            damage = sqlite3.connect(database)
            damage.execute("DROP TABLE task_content")
            damage.execute("DROP TABLE video_tasks")
            damage.commit()
            damage.close()

            started = time.monotonic()
            try:
                code = await trio.to_thread.run_sync(process.wait, EXIT_BOUND_S)
            except subprocess.TimeoutExpired:
                pytest.fail(f"the process did not exit within {EXIT_BOUND_S:.0f} s")
            assert code != 0
            assert time.monotonic() - started < EXIT_BOUND_S
        finally:
            process.kill()
            process.wait()
    log = "".join(path.read_text() for path in (tmp_path / "data").glob("server-*.log"))
    assert "fatal error: sora-actors stops" in log
