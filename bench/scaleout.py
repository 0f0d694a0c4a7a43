"""Benchmark (run by hand): 1, 2 and 3 sora-actors instances on one PostgreSQL.

For each instance count: a fresh database, one simulator, N `serve` processes. Tasks are
created over HTTP, spread round-robin over the instances (concurrency 32), while one
WebSocket client per instance follows all of the user's tasks. Prints task creations/s and
task events delivered/s to the WebSocket clients, and their ratios to one instance. Then,
with 3 instances, SIGKILLs one and prints how long until the last of its tasks was polled
again by another instance (measured on the simulator's clock).

    python bench/scaleout.py [--tasks 600] [--server postgresql+asyncpg://postgres@127.0.0.1/test]
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx2
import trio
from trio_websocket import ConnectionClosed, open_websocket_url

from sora_actors.storage import provision

SECRET = "bench-secret-" + "x" * 40
KEY = "sk-bench"
SIM_ARGS = ("--time-scale", "60", "--seed", "9")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_simulator() -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "sora_actors.cli", "simulator", "--port", "0", *SIM_ARGS],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    return process, process.stdout.readline().split()[3]


def start_instance(name: str, db: str, upstream: str, port: int, workdir: Path) -> Any:
    env = {
        **os.environ,
        "SORA_INSTANCE_ID": name,
        "SORA_DATABASE_URL": db,
        "SORA_DATA_DIR": str(workdir / name),
        "SORA_JWT_SECRET": SECRET,
        "SORA_BCRYPT_ROUNDS": "4",
        "SORA_UPSTREAM_URL": upstream,
        "SORA_UPSTREAM_API_KEY": KEY,
        "SORA_UPSTREAM_MAX_REQUESTS_PER_SECOND": "2000",
        "SORA_UPSTREAM_MAX_CONCURRENT_JOBS": "5000",
        "SORA_POLLING_SPEEDUP": "10",
        "SORA_LEASE_SECONDS": "10",
        "SORA_LEASE_HEARTBEAT_SECONDS": "3",
        "SORA_CLAIM_INTERVAL_SECONDS": "2",
    }
    log = (workdir / f"{name}.log").open("wb")
    return subprocess.Popen(
        [sys.executable, "-m", "sora_actors.cli", "serve", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=log,
    )


async def wait_up(client: httpx2.AsyncClient, url: str) -> None:
    with trio.fail_after(30):
        while True:
            try:
                if (await client.get(url + "/health")).status_code == 200:
                    return
            except httpx2.TransportError:
                pass
            await trio.sleep(0.1)


async def follow(url: str, token: str, counts: list[int], terminal: set[str]) -> None:
    with contextlib.suppress(ConnectionClosed):  # the killed instance's client just stops
        await _follow(url, token, counts, terminal)


async def _follow(url: str, token: str, counts: list[int], terminal: set[str]) -> None:
    async with open_websocket_url(url.replace("http://", "ws://") + "/ws") as ws:
        for kind, payload in (("auth", {"token": token}), ("subscribe_tasks", {})):
            await ws.send_message(json.dumps({"type": kind, "id": kind, "payload": payload}))
        while True:
            message = json.loads(await ws.get_message())
            if message["type"].startswith("task"):
                counts[0] += 1
                if message["type"] in ("taskCompleted", "taskFailed", "taskCancelled"):
                    terminal.add(message["payload"]["videoId"])


async def run_once(instances: int, tasks: int, server: str, kill: bool) -> dict[str, float]:
    name = f"sora_bench_{uuid.uuid4().hex[:8]}"
    db = await provision.create_database(server, name)
    workdir = Path(tempfile.mkdtemp(prefix="sora-scale-"))
    for i in range(instances):
        (workdir / f"i{i}").mkdir()
    simulator, upstream = start_simulator()
    ports = [free_port() for _ in range(instances)]
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    processes = [
        start_instance(f"i{i}", db, upstream, port, workdir) for i, port in enumerate(ports)
    ]
    result: dict[str, float] = {}
    try:
        async with httpx2.AsyncClient(timeout=30) as client:
            for url in urls:
                await wait_up(client, url)
            await client.post(
                urls[0] + "/api/auth/register", json={"username": "bench", "password": "password-1"}
            )
            login = await client.post(
                urls[0] + "/api/auth/login", json={"username": "bench", "password": "password-1"}
            )
            token = login.json()["data"]["token"]
            headers = {"Authorization": f"Bearer {token}"}
            counts = [0]
            terminal: set[str] = set()
            async with trio.open_nursery() as nursery:
                for url in urls:
                    nursery.start_soon(follow, url, token, counts, terminal)
                await trio.sleep(0.5)
                targets = itertools.cycle(urls)
                pending = iter(range(tasks))
                started = time.perf_counter()

                async def creator() -> None:
                    for i in pending:
                        response = await client.post(
                            next(targets) + "/api/video/tasks",
                            json={"prompt": f"bench {i}"},
                            headers=headers,
                        )
                        assert response.status_code == 201, response.text

                async with trio.open_nursery() as creators:
                    for _ in range(32):
                        creators.start_soon(creator)
                created_in = time.perf_counter() - started
                result["creates/s"] = tasks / created_in
                if kill:
                    await trio.sleep(1.0)
                    processes[-1].send_signal(signal.SIGKILL)
                    marker = await client.get(
                        upstream + "/videos?limit=1",
                        headers={"Authorization": f"Bearer {KEY}", "User-Agent": "bench-marker"},
                    )
                    assert marker.status_code == 200
                with trio.fail_after(300):
                    while len(terminal) < tasks:
                        await trio.sleep(0.2)
                elapsed = time.perf_counter() - started
                # Each instance's client receives every event of the user's tasks.
                result["events delivered/s"] = counts[0] / elapsed
                nursery.cancel_scope.cancel()
            if kill:
                root = upstream.rsplit("/v1", 1)[0]
                log = (await client.get(root + "/__admin/requests")).json()
                result["kill -> last adopted task polled (s)"] = adoption_time(log, "i2")
    finally:
        for i, process in enumerate(processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
            elif not (kill and i == len(processes) - 1):
                print(f"instance i{i} had died: exit code {process.returncode}", flush=True)
        for process in processes:
            process.wait(timeout=30)
        simulator.kill()
        simulator.wait()
        await provision.drop_database(server, name)
    return result


def adoption_time(log: list[dict[str, Any]], killed: str) -> float:
    killed_at = next(e["t"] for e in log if e["client"] == "bench-marker")
    victim = f"sora-actors/{killed}"
    orphans = {e["job_id"] for e in log if e["client"] == victim and e["op"] == "retrieve"}
    first_after: dict[str, float] = {}
    for entry in log:
        if (
            entry["job_id"] in orphans
            and entry["op"] == "retrieve"
            and entry["client"] != victim
            and entry["t"] > killed_at
        ):
            first_after.setdefault(entry["job_id"], entry["t"])
    return max(first_after.values()) - killed_at if first_after else float("nan")


async def main(tasks: int, server: str) -> None:
    rows = []
    for instances in (1, 2, 3):
        rows.append((instances, await run_once(instances, tasks, server, kill=False)))
        print(f"{instances} instance(s): {rows[-1][1]}", flush=True)
    base = rows[0][1]
    print(f"\n{'instances':<10}{'creates/s':>12}{'ratio':>8}{'events/s':>12}{'ratio':>8}")
    for instances, row in rows:
        print(
            f"{instances:<10}{row['creates/s']:>12.0f}{row['creates/s'] / base['creates/s']:>8.2f}"
            f"{row['events delivered/s']:>12.0f}"
            f"{row['events delivered/s'] / base['events delivered/s']:>8.2f}"
        )
    killed = await run_once(3, tasks, server, kill=True)
    print(
        "\nSIGKILL of 1 of 3 instances -> last adopted task polled again after "
        f"{killed['kill -> last adopted task polled (s)']:.1f} s (lease 10 s, claim every 2 s)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=600)
    parser.add_argument("--server", default="postgresql+asyncpg://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    trio.run(main, args.tasks, args.server)
