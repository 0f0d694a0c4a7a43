"""Real `sora-actors` processes for the tests that kill them: simulator and servers."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx2
import trio

from tests.conftest import OPEN_PLAN, TEST_SECRET

CLI = [sys.executable, "-m", "sora_actors.cli"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def simulator(*options: str) -> Iterator[str]:
    """A `sora-actors simulator` process on an ephemeral port; yields its base URL."""
    process = subprocess.Popen(
        [*CLI, "simulator", "--port", "0", *options], stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("simulator listening on "), line
        yield line.split()[3]
    finally:
        process.kill()
        process.wait()


def serve(
    port: int, data_dir: Path, database_url: str, upstream: str, api_key: str, **settings: str
) -> subprocess.Popen[bytes]:
    """A `sora-actors serve` process; ``settings`` are extra SORA_* values (lower-case keys)."""
    env = {
        **os.environ,
        "SORA_DATABASE_URL": database_url,
        "SORA_DATA_DIR": str(data_dir),
        "SORA_JWT_SECRET": TEST_SECRET,
        "SORA_BCRYPT_ROUNDS": "4",
        "SORA_UPSTREAM_URL": upstream,
        "SORA_UPSTREAM_API_KEY": api_key,
        "SORA_PLANS": json.dumps(OPEN_PLAN),
        "SORA_DEFAULT_PLAN": "OPEN",
        **{f"SORA_{key.upper()}": value for key, value in settings.items()},
    }
    data_dir.mkdir(parents=True, exist_ok=True)
    log = (data_dir / f"server-{uuid.uuid4().hex[:6]}.log").open("wb")
    return subprocess.Popen([*CLI, "serve", "--port", str(port)], env=env, stdout=log, stderr=log)


async def wait_healthy(
    url: str, timeout: float = 30, process: subprocess.Popen[bytes] | None = None
) -> None:
    """Until ``/health`` answers 200; fails at once if ``process`` (the server) exits."""
    async with httpx2.AsyncClient(base_url=url, timeout=5) as client:
        with trio.fail_after(timeout):
            while True:
                if process is not None and process.poll() is not None:
                    raise AssertionError(f"the server exited with status {process.returncode}")
                try:
                    if (await client.get("/health")).status_code == 200:
                        return
                except httpx2.TransportError:
                    pass
                await trio.sleep(0.1)
