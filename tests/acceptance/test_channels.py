"""Several upstream channels, end to end: real `sora-actors simulator` processes, a real server.

- failover without duplicates: the preferred channel fails most creates (5xx and 429 before
  acceptance, dropped answers after it); 100 tasks all complete, and across both simulators'
  own lists there is exactly one job per task, the one the task holds, on the channel the
  task recorded;
- a killed channel: tasks created after its process died go to the other one;
- a channel whose key is refused (401) is disabled, admins are told (activity log, /health,
  /metrics), and its tasks go elsewhere;
- the Replicate dialect end to end, including a cancel that cancels the prediction upstream.
"""

from __future__ import annotations

import subprocess
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx2
import pytest
import trio

from tests.conftest import make_settings
from tests.harness import LiveServer, live_server
from tests.processes import CLI

pytestmark = pytest.mark.slow

# Jobs of 3..5 simulated seconds at x50: well under a second of real time.
QUICK = ("--time-scale", "50", "--queue-min", "0.5", "--queue-max", "1", "--run-median", "3")
QUICK += ("--run-min", "2", "--run-max", "4", "--run-sigma", "0.2")
SERVER = {
    "polling_speedup": 40,
    "submit_settle_seconds": 2,
    "channel_failure_threshold": 3,
    "channel_cooldown_seconds": 0.5,
    "channel_cooldown_max_seconds": 2,
}
TERMINAL = ("COMPLETED", "FAILED", "CANCELLED")


class Simulator:
    """A `sora-actors simulator` process."""

    def __init__(self, *options: str) -> None:
        self.process = subprocess.Popen(
            [*CLI, "simulator", "--port", "0", *options], stdout=subprocess.PIPE, text=True
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        assert line.startswith("simulator listening on "), line
        self.url: str = line.split()[3]
        self.root = self.url.rsplit("/", 1)[0]

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()

    async def admin(self, path: str, **body: Any) -> Any:
        async with httpx2.AsyncClient(base_url=self.root, timeout=10) as client:
            response = await (client.post(path, json=body) if body else client.get(path))
            assert response.status_code == 200, response.text
            return response.json()

    async def jobs(self, key: str) -> list[dict[str, Any]]:
        """Every job this key made, from the simulator's own list endpoint."""
        jobs: list[dict[str, Any]] = []
        after = None
        async with httpx2.AsyncClient(timeout=10) as client:
            while True:
                params: dict[str, Any] = {"limit": 100, **({"after": after} if after else {})}
                page = (
                    await client.get(
                        f"{self.url}/videos",
                        params=params,
                        headers={"Authorization": f"Bearer {key}"},
                    )
                ).json()
                jobs += page["data"]
                if not page["has_more"]:
                    return jobs
                after = page["last_id"]


@contextmanager
def simulators(*option_sets: tuple[str, ...]) -> Iterator[list[Simulator]]:
    started: list[Simulator] = []
    try:
        for options in option_sets:
            started.append(Simulator(*options))
        yield started
    finally:
        for sim in started:
            sim.kill()


def channel(name: str, sim: Simulator, key: str, priority: int, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "base_url": sim.url,
        "api_keys": [key],
        "priority": priority,
        "max_concurrent_jobs": 500,
        "max_requests_per_second": 1000,
        **extra,
    }


@asynccontextmanager
async def serving(
    tmp_path: Path, database_url: str, channels: list[dict[str, Any]]
) -> AsyncIterator[tuple[LiveServer, dict[str, str]]]:
    settings = make_settings(tmp_path, database_url, channels=channels, **SERVER)
    async with live_server(settings) as server:
        yield server, await server.user("chan")


async def create_all(server: LiveServer, headers: dict[str, str], n: int) -> dict[str, str]:
    """``n`` tasks with unique prompts; {videoId: prompt}."""
    prompts: dict[str, str] = {}
    for i in range(n):
        prompt = f"channel test {i} {uuid.uuid4().hex[:8]}"
        created = await server.client.post(
            "/api/video/tasks", json={"prompt": prompt}, headers=headers
        )
        assert created.status_code == 201, created.text
        prompts[created.json()["data"]["videoId"]] = prompt
    return prompts


async def all_ended(
    server: LiveServer, headers: dict[str, str], n: int, timeout: float = 120
) -> list[dict[str, Any]]:
    with trio.fail_after(timeout):
        while True:
            tasks: list[dict[str, Any]] = []
            page = 1
            while True:
                response = await server.client.get(
                    f"/api/video/tasks?pageSize=100&page={page}", headers=headers
                )
                data = response.json()["data"]
                tasks += data["tasks"]
                if len(data["tasks"]) < 100:
                    break
                page += 1
            if len(tasks) == n and all(t["status"] in TERMINAL for t in tasks):
                return tasks
            await trio.sleep(0.25)


async def check_one_job_per_task(
    server: LiveServer,
    tasks: list[dict[str, Any]],
    prompts: dict[str, str],
    lists: dict[str, list[dict[str, Any]]],
) -> Counter[str]:
    """Across every channel's own list: one job per prompt, the one the task holds, on the
    channel the task recorded. Returns how many tasks each channel got."""
    assert Counter(t["status"] for t in tasks) == {"COMPLETED": len(tasks)}, [
        (t["status"], t["errorCode"], t["errorMessage"])
        for t in tasks
        if t["status"] != "COMPLETED"
    ]
    where = {job["id"]: (name, job["prompt"]) for name, jobs in lists.items() for job in jobs}
    per_prompt = Counter(prompt for _, prompt in where.values())
    assert len(where) == len(tasks), "more upstream jobs than tasks"
    assert set(per_prompt.values()) == {1}, "an upstream job was created twice"
    per_channel: Counter[str] = Counter()
    for task in tasks:
        name, prompt = where[task["externalVideoId"]]
        assert prompt == prompts[task["videoId"]]
        stored = await server.services.storage.tasks.get(task["videoId"])
        assert stored is not None and stored.channel == name
        per_channel[name] += 1
    return per_channel


async def test_failover_without_duplicates_when_the_preferred_channel_fails(
    database_url: str, tmp_path: Path
) -> None:
    with simulators((*QUICK, "--seed", "1"), (*QUICK, "--seed", "2")) as (bad, good):
        # Most creates on the preferred channel are refused before acceptance (503/500 with
        # an error body, 429) and some answers are lost after it (dropped connections: the
        # job exists, the lookup must find it there and never create it again elsewhere).
        await bad.admin("/__admin/faults", server_error=0.5, rate_limit=0.2, drop=0.1)
        channels = [channel("bad", bad, "sk-bad", 10), channel("good", good, "sk-good", 1)]
        async with serving(tmp_path, database_url, channels) as (server, headers):
            prompts = await create_all(server, headers, 100)
            tasks = await all_ended(server, headers, 100, timeout=240)
            stats = await bad.admin("/__admin/stats")
            await bad.admin("/__admin/faults", server_error=0, rate_limit=0, drop=0)  # to list
            lists = {"bad": await bad.jobs("sk-bad"), "good": await good.jobs("sk-good")}
            per_channel = await check_one_job_per_task(server, tasks, prompts, lists)
    assert per_channel["good"] > 0, "nothing failed over"
    assert per_channel["bad"] > 0, "the failing channel accepted nothing"
    assert stats["faults_injected"]["server_error"] > 0
    assert stats["faults_injected"].get("drop", 0) > 0


async def test_tasks_created_after_a_channel_was_killed_go_to_the_other(
    database_url: str, tmp_path: Path
) -> None:
    with simulators((*QUICK, "--seed", "3"), (*QUICK, "--seed", "4")) as (first, second):
        channels = [channel("first", first, "k1", 10), channel("second", second, "k2", 1)]
        async with serving(tmp_path, database_url, channels) as (server, headers):
            before = await create_all(server, headers, 10)
            done = await all_ended(server, headers, 10)
            first_jobs = await first.jobs("k1")
            first.kill()  # its process is gone: connections are refused from now on
            after = await create_all(server, headers, 20)
            tasks = await all_ended(server, headers, 30)
            lists = {"first": first_jobs, "second": await second.jobs("k2")}
            per_channel = await check_one_job_per_task(server, tasks, before | after, lists)
            health = (await server.client.get("/health")).json()["data"]
    assert {t["videoId"] for t in done} == set(before)
    assert per_channel == {"first": 10, "second": 20}
    states = {c["name"]: c["state"] for c in health["channels"]}
    assert states["second"] == "closed" and states["first"] in ("open", "half_open")


WEBHOOK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


async def test_a_refused_key_disables_the_channel_and_tells_admins(
    database_url: str, tmp_path: Path
) -> None:
    with simulators((*QUICK, "--api-key", "right")) as (sim,):
        channels = [
            channel("revoked", sim, "wrong", 10),
            {**channel("working", sim, "right", 1), "auth_style": "bearer"},
        ]
        async with serving(tmp_path, database_url, channels) as (server, headers):
            prompts = await create_all(server, headers, 5)
            tasks = await all_ended(server, headers, 5)
            per_channel = await check_one_job_per_task(
                server, tasks, prompts, {"working": await sim.jobs("right")}
            )
            health = (await server.client.get("/health")).json()["data"]
            metrics = (await server.client.get("/metrics")).text
            log = await server.services.storage.accounts.activities(limit=500)
            stats = await sim.admin("/__admin/stats")
    assert per_channel == {"working": 5}
    revoked = next(c for c in health["channels"] if c["name"] == "revoked")
    assert revoked["state"] == "disabled" and "401" in revoked["disabledReason"]
    assert 'sora_channel_disabled{channel="revoked"} 1.0' in metrics
    assert 'sora_channel_disabled{channel="working"} 0.0' in metrics
    entries = [e for e in log if e["action"] == "channel_disabled"]
    assert len(entries) == 1, entries
    # Creates already on their way when the first 401 came back may be refused too (actors
    # submit concurrently); once disabled, none of the 5 tasks' later calls used the key.
    assert 1 <= stats["refused"]["auth"] <= 5


async def test_replicate_dialect_end_to_end_with_upstream_cancel(
    database_url: str, tmp_path: Path
) -> None:
    slow = ("--dialect", "replicate", "--time-scale", "10", "--queue-min", "0.5")
    # Long enough (25-30 s) that the cancel reaches a running job even on a loaded machine.
    slow += ("--queue-max", "1", "--run-median", "275", "--run-min", "250", "--run-max", "300")
    with simulators(slow) as (sim,):
        channels = [{**channel("rep", sim, "r8_key", 1), "dialect": "replicate"}]
        async with serving(tmp_path, database_url, channels) as (server, headers):
            prompts = await create_all(server, headers, 2)
            done_id, cancel_id = list(prompts)
            with trio.fail_after(30):  # the second is running upstream: cancel it
                while True:
                    task = (
                        await server.client.get(f"/api/video/tasks/{cancel_id}", headers=headers)
                    ).json()["data"]
                    if task["externalVideoId"] and task["progress"] > 0:
                        break
                    await trio.sleep(0.1)
            cancelled = await server.client.post(
                f"/api/video/tasks/{cancel_id}/cancel", headers=headers
            )
            assert cancelled.status_code == 200, cancelled.text
            tasks = {t["videoId"]: t for t in await all_ended(server, headers, 2, timeout=60)}
            content = await server.client.get(
                f"/api/video/tasks/{done_id}/content", headers=headers
            )
            video = await server.client.get(content.json()["data"]["url"])
            async with httpx2.AsyncClient(
                headers={"Authorization": "Bearer r8_key"}, timeout=10
            ) as client:
                upstream = {
                    vid: (await client.get(f"{sim.url}/predictions/{t['externalVideoId']}")).json()
                    for vid, t in tasks.items()
                }
            stats = await sim.admin("/__admin/stats")
    assert tasks[done_id]["status"] == "COMPLETED" and tasks[cancel_id]["status"] == "CANCELLED"
    assert upstream[done_id]["status"] == "succeeded"
    assert upstream[done_id]["input"]["prompt"] == prompts[done_id]
    assert upstream[cancel_id]["status"] == "canceled"
    assert stats["cancels"] == 1 and stats["creates_total"] == 2
    assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"
    assert tasks[done_id]["thumbnailUrl"] is None  # a prediction has one output, no previews


async def make_admin(server: LiveServer, username: str) -> dict[str, str]:
    headers = await server.user(username)

    async def promote(conn: Any) -> None:
        await conn.execute("UPDATE users SET role = 'ADMIN' WHERE username = :u", {"u": username})

    await server.services.storage.database.run(promote)
    return headers


async def test_admins_see_channels_with_masked_keys_and_test_them(
    database_url: str, tmp_path: Path
) -> None:
    with simulators((*QUICK, "--api-key", "sk-right-0001")) as (sim,):
        channels = [
            {**channel("revoked", sim, "sk-wrong-9999", 10), "webhook_secret": WEBHOOK_SECRET},
            channel("working", sim, "sk-right-0001", 1),
        ]
        async with serving(tmp_path, database_url, channels) as (server, user):
            admin = await make_admin(server, "boss")
            assert (await server.client.get("/api/admin/channels")).status_code == 401
            refused = await server.client.get("/api/admin/channels", headers=user)
            assert refused.status_code == 403 and refused.json()["error"]["code"] == "FORBIDDEN"
            listed = await server.client.get("/api/admin/channels", headers=admin)
            assert listed.status_code == 200, listed.text
            shown = {c["name"]: c for c in listed.json()["data"]["channels"]}
            assert shown["revoked"]["keys"] == ["...9999"]
            assert shown["working"]["keys"] == ["...0001"]
            assert "sk-right" not in listed.text and "sk-wrong" not in listed.text
            assert WEBHOOK_SECRET not in listed.text and shown["revoked"]["webhookSecretSet"]
            assert shown["working"]["health"]["state"] == "closed"

            failed = await server.client.post("/api/admin/channels/revoked/test", headers=admin)
            assert failed.status_code == 200, failed.text
            report = failed.json()["data"]
            assert (report["ok"], report["status"], report["reenabled"]) == (False, 401, False)
            missing = await server.client.post("/api/admin/channels/nope/test", headers=admin)
            assert missing.status_code == 404
            assert missing.json()["error"]["code"] == "CHANNEL_NOT_FOUND"

            # A channel disabled earlier (say by a revoked key since replaced upstream) comes
            # back once a test call succeeds.
            server.services.runtime.channels.named("working").disabled_reason = "401 (earlier)"  # type: ignore[union-attr]
            back = (
                await server.client.post("/api/admin/channels/working/test", headers=admin)
            ).json()["data"]
            assert (back["ok"], back["reenabled"]) == (True, True)
            health = (await server.client.get("/health")).json()["data"]
            log = await server.services.storage.accounts.activities(limit=100)
    assert {c["name"]: c["state"] for c in health["channels"]}["working"] == "closed"
    tests = [e for e in log if e["action"] == "admin_channel_test"]
    assert len(tests) == 2
