"""Operations: /metrics, X-Request-Id and logs that never carry a secret.

A real server (SQLite, in-process simulator) for each test. The log test captures every
logger at DEBUG through the handler the CLI installs, in production (JSON) and development
mode, while a user goes through the whole journey, and then looks for each secret that
journey handled.
"""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families
from trio_websocket import open_websocket_url

from sora_actors.logs import configure_from_settings
from sora_actors.runtime import SIMULATOR_KEY
from sora_actors.settings import Settings
from tests.conftest import TEST_SECRET, make_settings
from tests.harness import LiveServer, live_server
from tests.wsclient import Session, ws_url

from .journey import FAST, finished_task

# Upstream jobs take about a second: long enough to see an actor running.
PACED = {"simulator_time_scale": 4, "polling_speedup": 80}


@pytest.fixture
async def server(tmp_path: Path, sqlite_url: str) -> AsyncIterator[LiveServer]:
    async with live_server(make_settings(tmp_path, sqlite_url, **PACED)) as live:
        yield live


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(server: LiveServer) -> Samples:
    response = await server.client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    key = (name, frozenset(labels.items()))
    assert key in samples, f"no series {name}{labels}"
    return samples[key]


# -- /metrics ---------------------------------------------------------------------------


async def test_metrics_count_requests_by_route_and_report_the_runtime(server: LiveServer) -> None:
    alice = await server.user("alice")
    assert (await server.client.get("/no/such/route")).status_code == 404
    assert (await server.client.get("/api/video/stats")).status_code == 401

    created = await server.client.post("/api/video/tasks", json={"prompt": "a fox"}, headers=alice)
    assert created.status_code == 201
    video_id = created.json()["data"]["videoId"]
    during = await scrape(server)
    assert value(during, "sora_actors_running") == 1

    async with open_websocket_url(ws_url(server.base_url)) as connection:
        session = Session(connection)
        await session.recv_type("connected")
        token = alice["Authorization"].removeprefix("Bearer ")
        assert (await session.auth(token))["type"] == "authSuccess"
        _, snapshot = await session.subscribe(video_id)
        if snapshot["payload"]["status"] != "COMPLETED":
            await session.recv_type("taskCompleted")
        with_socket = await scrape(server)
    task = (await server.client.get(f"/api/video/tasks/{video_id}", headers=alice)).json()["data"]
    assert task["status"] == "COMPLETED"
    with trio.fail_after(5):  # the content copy and the actor's exit follow the event
        while (after := await scrape(server))[("sora_actors_running", frozenset())] != 0:
            await trio.sleep(0.05)

    # HTTP series are labelled by URL rule, never by raw path (ids would explode them).
    requests = "sora_http_requests_total"
    assert value(after, requests, method="POST", route="/api/video/tasks", status="201") == 1
    assert value(after, requests, method="POST", route="/api/auth/register", status="201") == 1
    assert value(after, requests, method="GET", route="/api/video/stats", status="401") == 1
    assert value(after, requests, method="GET", route="unmatched", status="404") == 1
    assert value(after, requests, method="GET", route="/api/video/tasks/<video_id>", status="200")
    assert not any(video_id in str(labels) for _, labels in after)
    count = value(
        after, "sora_http_request_duration_seconds_count", method="POST", route="/api/video/tasks"
    )
    total = value(
        after, "sora_http_request_duration_seconds_sum", method="POST", route="/api/video/tasks"
    )
    assert count == 1 and 0 < total < 5
    assert (
        value(
            after,
            "sora_http_request_duration_seconds_bucket",
            method="POST",
            route="/api/video/tasks",
            le="+Inf",
        )
        == 1
    )

    # Upstream: one submission, every poll the task counted, both media fetched, no errors.
    polls = value(after, "sora_upstream_polls_total")
    assert polls >= 1 and polls == task["pollCount"]
    assert value(after, "sora_upstream_calls_total", operation="get") == polls
    assert value(after, "sora_upstream_calls_total", operation="submit") == 1
    assert value(after, "sora_upstream_calls_total", operation="fetch_content") == 2
    for kind in ("transient", "rate_limited", "timeout", "auth", "not_found"):
        assert value(after, "sora_upstream_errors_total", kind=kind) == 0

    # WebSocket: the open connection, and the task's events it was sent.
    assert value(with_socket, "sora_ws_connections") == 1
    assert value(with_socket, "sora_ws_events_published_total") >= 1
    assert value(after, "sora_ws_connections") == 0
    assert value(after, "sora_ws_events_coalesced_total") == 0
    assert value(after, "sora_actor_crashes_total") == 0
    # The upstream's job slots are free again, nothing waits for one, nothing was relayed
    # (one instance), and the polls that changed nothing were written in groups.
    assert value(during, "sora_upstream_jobs_active") <= 1
    assert value(after, "sora_upstream_jobs_active") == 0
    assert value(after, "sora_upstream_creates_waiting") == 0
    assert value(after, "sora_events_relayed_total") == 0
    assert value(after, "sora_poll_ledger_writes_total") <= polls


async def test_each_app_counts_only_its_own_requests(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    async with (
        live_server(make_settings(first, f"sqlite+aiosqlite:///{tmp_path / 'a.db'}")) as a,
        live_server(make_settings(second, f"sqlite+aiosqlite:///{tmp_path / 'b.db'}")) as b,
    ):
        for _ in range(3):
            assert (await a.client.get("/health")).status_code == 200
        assert (await b.client.get("/health")).status_code == 200
        ok = {"method": "GET", "route": "/health", "status": "200"}
        assert value(await scrape(a), "sora_http_requests_total", **ok) == 3
        assert value(await scrape(b), "sora_http_requests_total", **ok) == 1


async def test_made_up_methods_add_no_series(server: LiveServer) -> None:
    """Each random method used to add two series (300 requests: 302 series, 12 -> 591 KB)."""
    assert (await server.client.get("/health")).status_code == 200
    before = await scrape(server)
    for i in range(30):
        method = f"X{i:03d}{'ABCDEFGHIJ'[i % 10]}"
        response = await server.client.request(method, "/api/video/tasks")
        assert response.status_code in (400, 405), response.text
    response = await server.client.request("PATCH", "/health")  # a known method keeps its name
    assert response.status_code == 405
    after = await scrape(server)
    requests = {labels for name, labels in after if name == "sora_http_requests_total"}
    methods = {dict(labels)["method"] for labels in requests}
    assert methods <= {"GET", "POST", "PATCH", "OTHER"}, methods
    totals = [after[("sora_http_requests_total", labels)] for labels in requests]
    assert (
        sum(totals) - sum(v for (n, _), v in before.items() if n == "sora_http_requests_total")
        == 32
    )  # 30 made up + PATCH + the scrape before
    made_up = sum(
        after[("sora_http_requests_total", labels)]
        for labels in requests
        if dict(labels)["method"] == "OTHER"
    )
    assert made_up == 30
    new_series = {
        frozenset((k, v) for k, v in labels if k != "le")  # a histogram's buckets: one series
        for key in after.keys() - before.keys()
        for name, labels in [key]
        if name.startswith("sora_http")
    }
    # OTHER and PATCH requests (by status) and their latencies, the first scrape of /metrics.
    assert len(new_series) <= 6, sorted(map(sorted, new_series))


# -- X-Request-Id -----------------------------------------------------------------------


async def test_request_ids_are_echoed_or_generated_on_every_response(server: LiveServer) -> None:
    echoed = await server.client.get("/health", headers={"X-Request-Id": "lb-7f3a.42:1"})
    assert echoed.headers["x-request-id"] == "lb-7f3a.42:1"

    first = await server.client.get("/health")
    second = await server.client.get("/health")
    for response in (first, second):
        assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])
    assert first.headers["x-request-id"] != second.headers["x-request-id"]

    for insane in ("has spaces in it", "x" * 200, "-leading-dash", "a/b", "<script>"):
        response = await server.client.get("/health", headers={"X-Request-Id": insane})
        assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"]), insane

    # Errors of every origin: routing, auth, method, body limit, the signed file route.
    too_big = "x" * (server.services.settings.max_json_body_bytes + 1)
    errors = [
        ("GET", "/no/such/route", {}, 404),
        ("GET", "/api/video/tasks", {}, 401),
        ("POST", "/health", {}, 405),
        ("POST", "/api/auth/login", {"content": too_big}, 413),
        # Same keep-alive connection: an unread body above must not stall what follows.
        ("POST", "/api/video/tasks", {"files": {"input_reference": b"x" * 600_000}}, 401),
        ("GET", "/files/video_x/video?exp=1&sig=bad", {}, 403),
        ("POST", "/api/auth/login", {"content": b"\xff\xfe", "headers": {}}, 415),
    ]
    for number, (method, path, extra, status) in enumerate(errors):
        wanted = f"err-{number}"
        headers = {"X-Request-Id": wanted, **extra.pop("headers", {})}
        response = await server.client.request(method, path, headers=headers, **extra)
        assert response.status_code == status, (path, response.text)
        assert response.headers["x-request-id"] == wanted, path
        assert response.json()["success"] is False
    bad_json = await server.client.post(
        "/api/auth/login",
        content=b"\xff\xfe",
        headers={"Content-Type": "application/json", "X-Request-Id": "utf8"},
    )
    assert bad_json.status_code == 400 and bad_json.json()["error"]["code"] == "INVALID_JSON"
    assert bad_json.headers["x-request-id"] == "utf8"


# -- logs -------------------------------------------------------------------------------


class RawRecords(logging.Handler):
    """Records as the server's loggers made them, before any redaction (it runs first).

    The test's own clients share the process: trio-websocket logs the URL it connects to
    (with ``?token=``) and httpx2 each request to the server (with ``?sig=``). Those are
    not the server's lines and are left out here; the redacted output still covers them.
    """

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.texts: list[str] = []
        self.client_origin = "\0"  # set once the server's URL is known

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.name == "trio-websocket" or (
            record.name == "httpx2" and self.client_origin in text
        ):
            return
        if record.exc_info:
            text += logging.Formatter().formatException(record.exc_info)
        self.texts.append(text + " " + json.dumps(record.__dict__, default=str))


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    levels = {name: logging.getLogger(name).level for name in ("httpx2", "httpcore", "hpack")}
    try:
        yield
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)
        for name, old in levels.items():
            logging.getLogger(name).setLevel(old)


async def journey(server: LiveServer, password: str, wrong: str) -> list[str]:
    """Everything a user does, returning every secret it handled."""
    await server.register("carol", password=password, email="carol@example.com")
    refused = await server.client.post(
        "/api/auth/login", json={"username": "carol", "password": wrong}
    )
    assert refused.status_code == 401
    token = await server.login("carol", password)
    headers = {"Authorization": f"Bearer {token}"}
    finished = await finished_task(server, headers, "a kingfisher diving")
    assert (await server.client.get(finished.url)).status_code == 200
    assert (await server.client.head(finished.url)).status_code == 200
    refreshed = await server.client.post(
        f"/api/video/tasks/{finished.video_id}/refresh-url", headers=headers
    )
    assert refreshed.status_code == 200
    fresh_url = refreshed.json()["data"]["videoUrl"]
    assert (await server.client.get(fresh_url, headers={"Range": "bytes=0-9"})).status_code == 206
    # The WebSocket, with the token in the query string and in an auth message.
    async with open_websocket_url(ws_url(server.base_url, f"token={token}")) as connection:
        session = Session(connection)
        await session.recv_type("connected")
        assert (await session.auth(token))["type"] == "authSuccess"
        await session.subscribe(finished.video_id)
    bad = await server.client.get("/api/video/tasks", headers={"Authorization": f"Bearer {token}x"})
    assert bad.status_code == 401
    assert (await server.client.get("/metrics")).status_code == 200
    fresh_sig = re.search(r"sig=([^&]+)", fresh_url)
    assert fresh_sig is not None
    return [token, password, wrong, SIMULATOR_KEY, TEST_SECRET, finished.query["sig"], fresh_sig[1]]


@pytest.mark.parametrize("env", ["production", "development"])
async def test_logs_of_a_whole_journey_hold_no_secret(
    tmp_path: Path, sqlite_url: str, env: str, restore_logging: None
) -> None:
    overrides: dict[str, Any] = {**FAST, "env": env}
    settings: Settings = make_settings(tmp_path, sqlite_url, **overrides)
    out = io.StringIO()
    configure_from_settings(settings, level=logging.DEBUG, stream=out)
    raw = RawRecords()
    logging.getLogger().handlers.insert(0, raw)
    async with live_server(settings) as server:
        raw.client_origin = server.base_url
        secrets = await journey(server, "Tr0ub4dor&3-horse", "not-the-Passw0rd")
    text = out.getvalue()
    lines = text.splitlines()
    assert len(lines) > 50, text  # DEBUG from every logger: there is plenty to look through
    for secret in secrets:
        assert len(secret) >= 8
        assert secret not in text, f"{secret[:6]}... is in the log output"
        # Nothing even tried to log it: redaction is a safety net, not the plan.
        leaks = [entry for entry in raw.texts if secret in entry]
        assert not leaks, f"{secret[:6]}... was logged: {leaks[0][:600]}"
    assert "sig=" not in text.replace("sig=[REDACTED]", "")

    access = [line for line in lines if "GET /files/" in line]
    assert access, "the file requests are in the access log"
    assert all("?" not in line.split("GET ", 1)[1].split()[0] for line in access)
    if env == "production":
        entries = [json.loads(line) for line in lines]  # every line is one JSON object
        files = [
            e for e in entries if e["logger"] == "sora_actors.access" and "/files/" in e["path"]
        ]
        assert files and all(re.fullmatch(r"[0-9a-f]{32}", e["requestId"]) for e in files)
        assert all({"ts", "level", "logger", "message"} <= set(e) for e in entries)
        assert any(e["level"] == "debug" for e in entries)
    else:
        assert not any(line.startswith("{") for line in lines)
        assert any(re.search(r" \[[0-9a-f]{32}\]: GET /files/", line) for line in lines)


FORGED = "2099-01-01 00:00:00,000 INFO    sora_actors.access: GET /admin 200 FORGED LINE"


@pytest.mark.parametrize("env", ["production", "development"])
async def test_a_path_cannot_forge_a_log_line(
    tmp_path: Path, sqlite_url: str, env: str, restore_logging: None
) -> None:
    settings = make_settings(tmp_path, sqlite_url, env=env)
    out = io.StringIO()
    configure_from_settings(settings, level=logging.INFO, stream=out)
    async with live_server(settings) as server:
        for breaker in ("%0a", "%0d%0a", "%e2%80%a8", "%1b[2K%0d"):
            response = await server.client.get(f"/api/x{breaker}{FORGED.replace(' ', '%20')}")
            assert response.status_code == 404
    lines = out.getvalue().splitlines()
    access = [line for line in lines if "FORGED LINE" in line]
    assert len(access) == 4, lines  # one line per request, the path escaped in it
    assert not any(line.startswith("2099") or "\x1b" in line for line in lines)
    if env == "production":
        paths = [json.loads(line)["path"] for line in access]
        assert paths == [
            f"/api/x{escaped}{FORGED}" for escaped in ("\\n", "\\r\\n", "\\u2028", "\\x1b[2K\\r")
        ]
    else:
        assert all(re.match(r"\d{4}-\d\d-\d\d .* GET /api/x\\", line) for line in access)
