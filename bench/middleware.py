"""Benchmark (run by hand): what the per-request middleware costs, piece by piece.

Times, in one process and in CPU microseconds per request (steady on a shared machine):
- the request id (a caller's header checked, or a fresh one),
- the metrics (the request counter and the latency histogram),
- one access-log line through the handler the server installs (context, redaction,
  escaping, formatting; written to /dev/null), dev and production formats,
- the whole `ObservedApp` around a trivial ASGI app, against that app alone.

    python bench/middleware.py [--count 20000]
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable
from typing import Any

import trio

from sora_actors.http.observe import ObservedApp, access_log, request_id_from
from sora_actors.logs import configure

SCOPE: dict[str, Any] = {
    "type": "http",
    "method": "GET",
    "path": "/api/video/tasks/video_0f6f8a38-7a43-4d43-9a3e-0bd1f4a4c2b1",
    "headers": [(b"host", b"127.0.0.1"), (b"authorization", b"Bearer eyJhbGciOi.x.y")],
}


class _Metrics:
    """The real series, in a registry of their own (no runtime to collect from)."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram

        registry = CollectorRegistry()
        self.requests = Counter("r", "r", ["method", "route", "status"], registry=registry)
        self.latency = Histogram("l", "l", ["method", "route"], registry=registry)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)


def per_call(fn: Callable[[], Any], count: int) -> float:
    for _ in range(min(count, 1000)):
        fn()
    started = time.process_time()
    for _ in range(count):
        fn()
    return (time.process_time() - started) / count * 1e6


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


async def receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


async def send(message: dict[str, Any]) -> None:
    return None


async def asgi_per_call(asgi: Any, count: int) -> float:
    started = time.process_time()
    for _ in range(count):
        await asgi(SCOPE, receive, send)
    return (time.process_time() - started) / count * 1e6


def line(status: int = 200) -> None:
    access_log.info(
        "%s %s %s %.1f ms",
        "GET",
        SCOPE["path"],
        status,
        1.234,
        extra={"request_id": "abc", "method": "GET", "path": SCOPE["path"], "route": "/x"},
    )


def main(count: int) -> None:
    metrics = _Metrics()
    headers = SCOPE["headers"]
    print(f"{'request id':<40}{per_call(lambda: request_id_from(headers), count):8.1f} us")
    observe = lambda: metrics.observe("GET", "/api/video/tasks/<video_id>", 200, 0.001)  # noqa: E731
    print(f"{'metrics (counter + histogram)':<40}{per_call(observe, count):8.1f} us")
    with open("/dev/null", "w") as null:
        for production in (False, True):
            configure(production=production, secrets=["bench-secret-xxxxxxxx"], stream=null)
            name = f"access-log line ({'JSON' if production else 'dev'})"
            print(f"{name:<40}{per_call(line, count):8.1f} us")
        configure(production=False, level=logging.WARNING, stream=null)
        print(f"{'access-log line, INFO not emitted':<40}{per_call(line, count):8.1f} us")
        configure(production=False, stream=null)
        bare = trio.run(asgi_per_call, app, count)
        observed = trio.run(asgi_per_call, ObservedApp(app, metrics), count)  # type: ignore[arg-type]
    print(f"{'trivial ASGI app':<40}{bare:8.1f} us")
    print(f"{'ObservedApp around it (all of the above)':<40}{observed:8.1f} us")
    print(f"{'middleware overhead per request':<40}{observed - bare:8.1f} us")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=20_000)
    main(parser.parse_args().count)
