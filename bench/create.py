"""Benchmark (run by hand): POST /api/video/tasks (JSON) latency at a fixed rate, open loop.

A real server (`sora-actors serve`, its own SQLite in a temp dir or --database-url, the
in-memory upstream so that the actors the creates start do real work) is offered
``--rate`` creates per second for ``--seconds``: each request starts on its schedule
whether or not earlier ones have answered, and its latency counts from that scheduled
start (so a stall is not hidden by the client waiting: no coordinated omission).

    python bench/create.py [--rate 200] [--seconds 20] [--database-url URL]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx2
import trio
from api import post_json, wait_until_up
from measure import free_port, percentile

ROOT = Path(__file__).resolve().parent.parent


async def offer(base: str, token: str, rate: float, seconds: float) -> tuple[list[float], int]:
    latencies: list[float] = []
    failures = 0
    headers = {"Authorization": f"Bearer {token}"}
    limits = httpx2.Limits(max_connections=1000, max_keepalive_connections=200)
    async with httpx2.AsyncClient(base_url=base, timeout=30, limits=limits) as client:

        async def one(n: int, scheduled: float) -> None:
            nonlocal failures
            try:
                response = await client.post(
                    "/api/video/tasks", json={"prompt": f"open loop {n}"}, headers=headers
                )
            except httpx2.HTTPError:  # a timeout counts, with the time it took
                failures += 1
            else:
                failures += response.status_code != 201
            latencies.append((time.perf_counter() - scheduled) * 1000)

        started = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for n in range(int(rate * seconds)):
                scheduled = started + n / rate
                await trio.sleep(max(0.0, scheduled - time.perf_counter()))
                nursery.start_soon(one, n, scheduled)
    return latencies, failures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--database-url", default="", help="default: SQLite in a temp dir")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="sora-create-"))
    env = {
        **os.environ,
        "SORA_DATA_DIR": str(workdir),
        "SORA_DATABASE_URL": args.database_url,
        "SORA_JWT_SECRET": "bench-secret-" + "x" * 32,
        "SORA_BCRYPT_ROUNDS": "4",
        # The per-user request limits (0: none) would answer 429 long before the ceiling.
        **{
            f"SORA_RATE_LIMIT_{kind}_PER_{who}": "0"
            for kind in ("CREATE", "READ")
            for who in ("USER", "ADDRESS")
        },
    }
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "sora_actors.cli", "serve", "--port", str(port)],
        env=env,
        cwd=ROOT,
        stderr=(workdir / "server.log").open("w"),
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until_up(base + "/health")
        name = f"create{os.getpid()}"
        post_json(base + "/api/auth/register", {"username": name, "password": "bench-pass"})
        login = post_json(base + "/api/auth/login", {"username": name, "password": "bench-pass"})
        token = str(login["data"]["token"])  # type: ignore[index]
        latencies, failures = trio.run(offer, base, token, args.rate, args.seconds)
        print(
            f"create (JSON) at {args.rate:.0f}/s open loop for {args.seconds:.0f} s: "
            f"p50 {percentile(latencies, 50):.1f} ms  p99 {percentile(latencies, 99):.1f} ms  "
            f"max {max(latencies):.1f} ms  ({len(latencies)} requests, {failures} failed; "
            f"database {args.database_url or 'SQLite'}; goal p99 < 20 ms)"
        )
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
