"""SIGKILL the server mid-flight; a new process on the same database finishes every task.

Real processes: `sora-actors simulator` and `sora-actors serve`, talking HTTP. Checks that
every task ends, that no task got two upstream jobs, that each stored upstream id is the
job made for that task's prompt, and that no observer ever saw a task's progress go back.
"""

from __future__ import annotations

import signal
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
import trio

from tests import processes

pytestmark = pytest.mark.slow

TASKS = 50
API_KEY = "sk-crash-test"


@pytest.fixture
def simulator() -> Iterator[str]:
    with processes.simulator("--time-scale", "20", "--seed", "3") as url:
        yield url


def start_server(database_url: str, data_dir: Path, upstream: str, port: int) -> Any:
    return processes.serve(
        port,
        data_dir,
        database_url,
        upstream,
        API_KEY,
        upstream_max_requests_per_second="500",
        upstream_max_concurrent_jobs="200",
        polling_speedup="10",
        submit_settle_seconds="2",
    )


async def snapshot(client: httpx2.AsyncClient, headers: dict[str, str]) -> list[dict[str, Any]]:
    response = await client.get("/api/video/tasks?pageSize=100", headers=headers)
    tasks: list[dict[str, Any]] = response.json()["data"]["tasks"]
    return tasks


async def test_sigkill_mid_flight_then_resume(
    database_url: str, tmp_path: Path, simulator: str
) -> None:
    port = processes.free_port()
    base = f"http://127.0.0.1:{port}"
    seen: dict[str, list[int]] = defaultdict(list)

    def observe(tasks: list[dict[str, Any]]) -> None:
        for task in tasks:
            seen[task["videoId"]].append(task["progress"])

    first = start_server(database_url, tmp_path, simulator, port)
    try:
        async with httpx2.AsyncClient(base_url=base, timeout=10) as client:
            await processes.wait_healthy(base)
            await client.post(
                "/api/auth/register", json={"username": "crash", "password": "password-1"}
            )
            login = await client.post(
                "/api/auth/login", json={"username": "crash", "password": "password-1"}
            )
            headers = {"Authorization": f"Bearer {login.json()['data']['token']}"}
            prompts = {}
            for i in range(TASKS):
                prompt = f"crash test {i} {uuid.uuid4().hex[:8]}"
                created = await client.post(
                    "/api/video/tasks", json={"prompt": prompt}, headers=headers
                )
                assert created.status_code == 201, created.text
                prompts[created.json()["data"]["videoId"]] = prompt
            for _ in range(15):  # let some tasks submit, some poll
                observe(await snapshot(client, headers))
                await trio.sleep(0.1)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()

    before = {vid: progress[-1] for vid, progress in seen.items()}
    assert any(p > 0 for p in before.values()), "the kill came before any progress"
    assert not all(p == 100 for p in before.values()), "the kill came after everything ended"

    second = start_server(database_url, tmp_path, simulator, port)
    try:
        async with httpx2.AsyncClient(base_url=base, timeout=10) as client:
            await processes.wait_healthy(base)
            login = await client.post(
                "/api/auth/login", json={"username": "crash", "password": "password-1"}
            )
            headers = {"Authorization": f"Bearer {login.json()['data']['token']}"}
            with trio.fail_after(120):
                while True:
                    tasks = await snapshot(client, headers)
                    observe(tasks)
                    if all(t["status"] in ("COMPLETED", "FAILED", "CANCELLED") for t in tasks):
                        break
                    await trio.sleep(0.25)
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=30)

    assert len(tasks) == TASKS
    assert Counter(t["status"] for t in tasks) == {"COMPLETED": TASKS}, [
        (t["status"], t["errorCode"]) for t in tasks if t["status"] != "COMPLETED"
    ]
    for video_id, progress in seen.items():
        assert progress == sorted(progress), f"progress of {video_id} went back: {progress}"

    # The upstream's own record: one job per prompt, and it is the one each task holds.
    async with httpx2.AsyncClient(timeout=10) as upstream:
        jobs: list[dict[str, Any]] = []
        after = None
        while True:
            params: dict[str, Any] = {"limit": 100, **({"after": after} if after else {})}
            page = (
                await upstream.get(
                    f"{simulator}/videos",
                    params=params,
                    headers={"Authorization": f"Bearer {API_KEY}"},
                )
            ).json()
            jobs += page["data"]
            if not page["has_more"]:
                break
            after = page["last_id"]
    per_prompt = Counter(job["prompt"] for job in jobs)
    assert per_prompt.most_common(1)[0][1] == 1, "an upstream job was created twice"
    job_of_prompt = {job["prompt"]: job["id"] for job in jobs}
    for task in tasks:
        assert task["externalVideoId"] == job_of_prompt[prompts[task["videoId"]]]
    assert len(jobs) == TASKS
