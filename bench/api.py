"""Benchmark (run by hand): authenticated GETs (/api/auth/me, /api/video/tasks/:id) against
a bare Quart-Trio JSON route.

Both servers run as separate processes, served the same way (Hypercorn trio worker, same
config); load comes from `wrk` (apt-get install wrk) on loopback, one route at a time, in
alternating rounds (bare, route 1, route 2, bare, ...): on a shared machine the load drifts,
and each ratio is taken within one round. Prints req/s and p99 of each round, and the median
ratio of each route to the bare one.

    python bench/api.py [--seconds 5] [--rounds 3] [--connections 50] [--database-url URL]
                        [--path P ...]

``--path /api/video/stats`` measures a route that reads storage besides the account check;
``{task}`` in a path is replaced by the id of a task created beforehand. The account/session
check is answered from the access cache (sora_actors/access.py); run with
``SORA_SESSION_CACHE_SECONDS=0`` in the environment to measure a database read per request.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from measure import cpu_seconds, free_port

ROOT = Path(__file__).resolve().parent.parent


def wait_until_up(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except OSError as error:
            if getattr(error, "code", None):  # an HTTP error still means it is up
                return
            time.sleep(0.2)
    raise SystemExit(f"server at {url} did not come up")


def post_json(url: str, body: dict[str, str], headers: Sequence[str] = ()) -> dict[str, object]:
    fields = dict(header.split(": ", 1) for header in headers)
    request = urllib.request.Request(
        url, json.dumps(body).encode(), {"Content-Type": "application/json", **fields}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        result: dict[str, object] = json.load(response)
        return result


def run_wrk(
    url: str, seconds: int, connections: int, headers: list[str], pid: int | None = None
) -> tuple[float, float, float]:
    """req/s, p99 ms, and (given the server's ``pid``) its CPU microseconds per request."""
    cpu_before = cpu_seconds(pid) if pid else 0.0
    command = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency"]
    for header in headers:
        command += ["-H", header]
    output = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    value, unit = re.search(r"99%\s+([\d.]+)(us|ms|s)", output).groups()  # type: ignore[union-attr]
    p99_ms = float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    if "Non-2xx" in output:
        raise SystemExit(f"non-2xx responses from {url}:\n{output}")
    requests = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    cpu_us = (cpu_seconds(pid) - cpu_before) * 1e6 / max(requests, 1) if pid else 0.0
    return rps, p99_ms, cpu_us


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--database-url", default="", help="default: SQLite in a temp dir")
    parser.add_argument("--path", action="append", help="an authenticated GET to load")
    args = parser.parse_args()
    paths: list[str] = args.path or ["/api/auth/me", "/api/video/tasks/{task}"]
    if not shutil.which("wrk"):
        raise SystemExit("needs wrk: apt-get install wrk")

    workdir = Path(tempfile.mkdtemp(prefix="sora-bench-"))
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
        "SORA_RATE_LIMIT_READ_PER_USER": "0",
        "SORA_RATE_LIMIT_READ_PER_ADDRESS": "0",
    }
    sora_port, bare_port = free_port(), free_port()
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "sora_actors.cli", "serve", "--port", str(sora_port)],
            env=env,
            cwd=ROOT,
            stderr=(workdir / "server.log").open("w"),
        ),
        subprocess.Popen(
            [sys.executable, str(ROOT / "bench" / "bare_app.py"), str(bare_port)],
            env=env,
            cwd=ROOT,
            stderr=subprocess.DEVNULL,
        ),
    ]
    try:
        sora = f"http://127.0.0.1:{sora_port}"
        bare = f"http://127.0.0.1:{bare_port}/bare"
        wait_until_up(sora + "/health")
        wait_until_up(bare)
        name = f"bench{os.getpid()}"
        post_json(sora + "/api/auth/register", {"username": name, "password": "bench-pass"})
        login = post_json(sora + "/api/auth/login", {"username": name, "password": "bench-pass"})
        token = login["data"]["token"]  # type: ignore[index]
        auth = [f"Authorization: Bearer {token}"]
        created = post_json(sora + "/api/video/tasks", {"prompt": "bench"}, auth)
        task_id = str(created["data"]["videoId"])  # type: ignore[index]
        urls = {path: sora + path.replace("{task}", task_id) for path in paths}
        if "{task}" in args.path:
            created = post_json(
                sora + "/api/video/tasks", {"prompt": "bench"}, {"Authorization": f"Bearer {token}"}
            )
            args.path = args.path.replace("{task}", created["data"]["videoId"])  # type: ignore[index]

        sora_pid, bare_pid = processes[0].pid, processes[1].pid
        run_wrk(bare, 2, args.connections, [])  # warm both up
        for url in urls.values():
            run_wrk(url, 2, args.connections, auth)
        # On a loaded machine req/s says more about the neighbours than about us; the
        # server's own CPU time per request does not: both ratios are printed.
        ratios: dict[str, list[float]] = {path: [] for path in paths}
        cpu_ratios: dict[str, list[float]] = {path: [] for path in paths}
        print(f"{'round':<7}{'route':<28}{'req/s':>9}{'p99 ms':>9}{'CPU us/req':>11}{'ratio':>7}")
        for round_no in range(1, args.rounds + 1):
            bare_rps, bare_p99, bare_cpu = run_wrk(
                bare, args.seconds, args.connections, [], bare_pid
            )
            print(
                f"{round_no:<7}{'bare Quart-Trio JSON':<28}{bare_rps:>9.0f}{bare_p99:>9.1f}"
                f"{bare_cpu:>11.0f}"
            )
            for path, url in urls.items():
                rps, p99, cpu = run_wrk(url, args.seconds, args.connections, auth, sora_pid)
                ratios[path].append(rps / bare_rps)
                cpu_ratios[path].append(bare_cpu / cpu)
                print(
                    f"{round_no:<7}{'GET ' + path:<28}{rps:>9.0f}{p99:>9.1f}{cpu:>11.0f}"
                    f"{rps / bare_rps:>7.2f}"
                )
        for path in paths:
            print(
                f"GET {path} : bare   req/s ratio median {statistics.median(ratios[path]):.2f}"
                f" ({', '.join(f'{v:.2f}' for v in ratios[path])});"
                f"   CPU-per-request ratio median {statistics.median(cpu_ratios[path]):.2f}"
                f" ({', '.join(f'{v:.2f}' for v in cpu_ratios[path])})"
            )
        print(
            f"({args.connections} connections, {args.seconds} s per route per round, "
            f"database {args.database_url or 'SQLite'})"
        )
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            process.wait(timeout=20)
        if os.environ.get("BENCH_KEEP"):
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
