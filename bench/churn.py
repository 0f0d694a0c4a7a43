"""Benchmark (run by hand): server memory under WebSocket churn.

Starts a real `sora-actors serve` process (SQLite in a temporary folder, in-process
simulator), then runs ``--rounds`` rounds of ``--connections`` clients that connect,
authenticate and close, ``--parallel`` at a time. After each round it prints the server's
RSS and its open connections (from /metrics): a server that keeps something of every closed
connection grows round after round.

    python bench/churn.py [--rounds 16] [--connections 500] [--parallel 50]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx2
import trio
from measure import free_port
from trio_websocket import open_websocket_url

ROOT = Path(__file__).resolve().parent.parent


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def client(url: str, token: str) -> None:
    async with open_websocket_url(url) as connection:
        await connection.get_message()  # connected
        await connection.send_message(json.dumps({"type": "auth", "payload": {"token": token}}))
        await connection.get_message()  # authSuccess


async def churn(base: str, rounds: int, connections: int, parallel: int, pid: int) -> None:
    async with httpx2.AsyncClient(base_url=base, timeout=30) as http:
        body = {"username": "churner", "password": "password-1"}
        await http.post("/api/auth/register", json=body)
        token = (await http.post("/api/auth/login", json=body)).json()["data"]["token"]
        url = base.replace("http://", "ws://") + "/ws"
        limiter = trio.CapacityLimiter(parallel)
        print(f"round 0: RSS {rss_mib(pid):.1f} MiB")

        async def one() -> None:
            async with limiter:
                await client(url, token)

        for number in range(1, rounds + 1):
            started = time.perf_counter()
            async with trio.open_nursery() as nursery:
                for _ in range(connections):
                    nursery.start_soon(one)
            await trio.sleep(2)  # let closed connections finish
            metrics = (await http.get("/metrics")).text
            open_ws = next(
                (
                    line.split()[-1]
                    for line in metrics.splitlines()
                    if line.startswith("sora_ws_connections ")
                ),
                "?",
            )
            print(
                f"round {number}: {connections} connect/auth/close in "
                f"{time.perf_counter() - started:.1f} s; RSS {rss_mib(pid):.1f} MiB; "
                f"open WebSocket connections {open_ws}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=16)
    parser.add_argument("--connections", type=int, default=500)
    parser.add_argument("--parallel", type=int, default=50)
    args = parser.parse_args()
    port = free_port()
    with tempfile.TemporaryDirectory() as data:
        env = {
            **os.environ,
            "SORA_DATA_DIR": data,
            "SORA_PORT": str(port),
            "SORA_BCRYPT_ROUNDS": "4",
        }
        server = subprocess.Popen(
            [sys.executable, "-m", "sora_actors.cli", "serve"],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    if httpx2.get(base + "/health").status_code == 200:
                        break
                except httpx2.HTTPError:
                    time.sleep(0.2)
            trio.run(churn, base, args.rounds, args.connections, args.parallel, server.pid)
        finally:
            server.terminate()
            server.wait(30)


if __name__ == "__main__":
    main()
