"""What the benchmarks measure the same way: RSS, CPU time, percentiles, event-loop lag.

Imported by the scripts next to it (run as ``python bench/<name>.py``, so this folder is
first on ``sys.path``).
"""

from __future__ import annotations

import math
import os
import socket
from pathlib import Path

import trio

LAG_TICK = 0.010


def rss_kib(pid: int | str = "self") -> int:
    """Resident memory of a process (this one by default), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pid: int | str = "self") -> float:
    """User + system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], p: float) -> float:
    """The ``p``-th percentile (0-100), nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(p / 100 * len(ordered)) - 1))]


async def sample_lag(samples: list[float], stop: trio.Event) -> None:
    """Until ``stop``: sleep 10 ms and record the overshoot (seconds) in ``samples``."""
    while not stop.is_set():
        start = trio.current_time()
        await trio.sleep(LAG_TICK)
        samples.append(trio.current_time() - start - LAG_TICK)


def free_port() -> int:
    """A TCP port nothing listens on right now (for a server started in a subprocess)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
