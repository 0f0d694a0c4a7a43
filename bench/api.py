"""Benchmark (run by hand): an authenticated GET (/api/auth/me) against a bare Quart-Trio
JSON route.

Both servers run as separate processes, served the same way (Hypercorn trio worker, same
config); load comes from `wrk` (apt-get install wrk) on loopback, one server at a time.
Prints req/s and latency p99 of each and their ratio.

    python bench/api.py [--seconds 10] [--connections 50] [--database-url URL] [--path P]

``--path /api/video/stats`` measures a route that reads storage besides the account check;
``--path '/api/video/tasks/{task}'`` one task (created first) by id. The account/session
check is answered from the access cache (sora_actors/access.py); run with
``SORA_SESSION_CACHE_SECONDS=0`` in the environment to measure a database read per request.
/api/video rate limits are off for the measurement.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from measure import free_port

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


def post_json(
    url: str, body: dict[str, str], headers: dict[str, str] | None = None
) -> dict[str, object]:
    request = urllib.request.Request(
        url, json.dumps(body).encode(), {"Content-Type": "application/json", **(headers or {})}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        result: dict[str, object] = json.load(response)
        return result


def run_wrk(url: str, seconds: int, connections: int, headers: list[str]) -> tuple[float, float]:
    command = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency"]
    for header in headers:
        command += ["-H", header]
    output = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    value, unit = re.search(r"99%\s+([\d.]+)(us|ms|s)", output).groups()  # type: ignore[union-attr]
    p99_ms = float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    if "Non-2xx" in output:
        raise SystemExit(f"non-2xx responses from {url}:\n{output}")
    return rps, p99_ms


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc): a figure that a busy
    machine disturbs far less than req/s."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--database-url", default="", help="default: SQLite in a temp dir")
    parser.add_argument("--path", default="/api/auth/me", help="the authenticated GET to load")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("needs wrk: apt-get install wrk")

    workdir = Path(tempfile.mkdtemp(prefix="sora-bench-"))
    env = {
        **os.environ,
        "SORA_DATA_DIR": str(workdir),
        "SORA_DATABASE_URL": args.database_url,
        "SORA_JWT_SECRET": "bench-secret-" + "x" * 32,
        "SORA_BCRYPT_ROUNDS": "4",
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
        post_json(sora + "/api/auth/register", {"username": "bench", "password": "bench-pass"})
        login = post_json(sora + "/api/auth/login", {"username": "bench", "password": "bench-pass"})
        token = login["data"]["token"]  # type: ignore[index]
        auth = [f"Authorization: Bearer {token}"]
        if "{task}" in args.path:
            created = post_json(
                sora + "/api/video/tasks", {"prompt": "bench"}, {"Authorization": f"Bearer {token}"}
            )
            args.path = args.path.replace("{task}", created["data"]["videoId"])  # type: ignore[index]

        run_wrk(bare, 2, args.connections, [])  # warm both up
        run_wrk(sora + args.path, 2, args.connections, auth)
        bare_rps, bare_p99 = run_wrk(bare, args.seconds, args.connections, [])
        cpu_before = cpu_seconds(processes[0].pid)
        me_rps, me_p99 = run_wrk(sora + args.path, args.seconds, args.connections, auth)
        cpu_per_request_ms = (
            (cpu_seconds(processes[0].pid) - cpu_before) * 1000 / (me_rps * args.seconds)
        )

        print(f"{'route':<28}{'req/s':>10}{'p99 ms':>10}")
        print(f"{'bare Quart-Trio JSON':<28}{bare_rps:>10.0f}{bare_p99:>10.1f}")
        print(f"{'GET ' + args.path:<28}{me_rps:>10.0f}{me_p99:>10.1f}")
        print(
            f"ratio {args.path} : bare  req/s {me_rps / bare_rps:.2f}   p99 {me_p99 / bare_p99:.2f}"
            f"   ({args.connections} connections, {args.seconds} s each, "
            f"database {args.database_url or 'SQLite'})"
        )
        print(f"server CPU per {args.path} request: {cpu_per_request_ms:.3f} ms")
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
