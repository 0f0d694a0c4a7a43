"""Request ids, the access log and ``/metrics`` (Prometheus text format).

An ASGI middleware wraps the whole app, so that every response (errors, 404s, the body
limit's 413, WebSocket upgrades) carries ``X-Request-Id`` and is counted, and every log
line written while serving it names the request. Metrics live in a registry of the app's
own, so several apps in one process (tests) never share series. Runtime figures (actors,
polls, upstream errors, WebSocket connections and events) are read when scraped, from the
counters the runtime keeps anyway.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector
from quart import Blueprint, Quart, Response, current_app, request

from ..channels import ChannelStatistics
from ..logs import CURRENT_REQUEST, RequestScope
from ..services import Services
from ..storage import StorageError
from ..upstream import ErrorKind
from .apidoc import documented
from .context import ctx
from .listener import Connections

access_log = logging.getLogger("sora_actors.access")

REGISTRY_KEY = "sora_metrics"
HEADER = "X-Request-Id"
_HEADER_BYTES = HEADER.lower().encode()
# A caller's id is kept only if it is short and plain (it ends up in logs and headers).
_SANE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
UNMATCHED = "unmatched"
# Metric labels take only these methods; any other becomes OTHER, so that a client sending
# made-up methods cannot add series without bound (each one used to add two).
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OTHER_METHOD = "OTHER"
# Polled by monitors; logged at DEBUG so they do not drown the access log.
_QUIET_PATHS = frozenset({"/metrics", "/health"})

ASGIApp = Any  # quart's ASGI callables; typed loosely to stay version-proof


def request_id_from(headers: list[tuple[bytes, bytes]]) -> str:
    """The caller's ``X-Request-Id`` when sane, else a fresh one."""
    for name, value in headers:
        if name.lower() == _HEADER_BYTES:
            text = value.decode("latin-1").strip()
            if _SANE_ID.fullmatch(text):
                return text
            break
    return uuid.uuid4().hex


def _has_body(headers: list[tuple[bytes, bytes]]) -> bool:
    for name, value in headers:
        lowered = name.lower()
        if lowered == b"content-length":
            return value.strip() not in (b"", b"0")
        if lowered == b"transfer-encoding":
            return True
    return False


class HttpMetrics:
    """The per-app registry and the series the middleware feeds."""

    def __init__(self, services: Services, connections: Connections | None = None) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "sora_http_requests",
            "HTTP requests answered, by route (URL rule) and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "sora_http_request_duration_seconds",
            "Time from request to the end of the response, by route (URL rule)",
            ["method", "route"],
            registry=self.registry,
        )
        self.registry.register(RuntimeCollector(services))
        if connections is not None:
            self.registry.register(ConnectionCollector(connections))

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        method = method if method in KNOWN_METHODS else OTHER_METHOD
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)


class RuntimeCollector(Collector):
    """Figures of the actor runtime, read at scrape time from each part's snapshot."""

    def __init__(self, services: Services) -> None:
        self._services = services

    def collect(self) -> Iterator[Metric]:
        runtime = self._services.runtime
        supervisor = runtime.supervisor.statistics()
        ledger = runtime.supervisor.ledger.statistics()
        hub = runtime.hub.statistics()
        relay = runtime.relay.statistics()
        limiter = runtime.limiter.statistics()
        upstream = runtime.provider.statistics()
        yield GaugeMetricFamily(
            "sora_actors_running", "Task actors running in this process", supervisor.running
        )
        yield CounterMetricFamily(
            "sora_actor_crashes", "Actor crashes (each restarted or given up)", supervisor.crashes
        )
        yield CounterMetricFamily(
            "sora_poll_ledger_writes",
            "Units of work that recorded poll counts (each carries many polls)",
            ledger.writes,
        )
        yield CounterMetricFamily(
            "sora_upstream_polls", "Polls of the upstream for a job's state", upstream.polls
        )
        calls = CounterMetricFamily(
            "sora_upstream_calls", "Calls to the upstream API by operation", labels=["operation"]
        )
        for operation, count in sorted(upstream.calls.items()):
            calls.add_metric([operation], count)
        yield calls
        errors = CounterMetricFamily(
            "sora_upstream_errors", "Failed upstream calls by kind of failure", labels=["kind"]
        )
        for kind in ErrorKind:
            errors.add_metric([kind.value], upstream.errors.get(kind.value, 0))
        yield errors
        yield GaugeMetricFamily(
            "sora_upstream_jobs_active",
            "Upstream jobs believed unfinished, plus creates in flight (the job-slot count)",
            limiter.active_jobs,
        )
        yield GaugeMetricFamily(
            "sora_upstream_creates_waiting",
            "Creates waiting for a free upstream job slot",
            limiter.waiting_for_slot,
        )
        yield from _channel_metrics(runtime.channels.statistics())
        yield GaugeMetricFamily(
            "sora_ws_connections", "Open WebSocket connections", hub.connections
        )
        yield CounterMetricFamily(
            "sora_ws_events_published",
            "Task events serialised once and queued to their subscribers",
            hub.published,
        )
        yield CounterMetricFamily(
            "sora_ws_events_coalesced",
            "Progress events replaced by a newer one in a slow connection's queue",
            hub.coalesced,
        )
        yield CounterMetricFamily(
            "sora_ws_connections_killed",
            "Connections closed for being too slow or for an expired token",
            hub.dropped,
        )
        yield CounterMetricFamily(
            "sora_events_relayed",
            "Task events published here for changes made on other instances",
            relay.relayed,
        )
        storage, keeper = self._services.storage, runtime.content
        yield GaugeMetricFamily(
            "sora_storage_full",
            "1 while writes to the database fail for lack of space",
            int(storage.full_since is not None),
        )
        yield GaugeMetricFamily(
            "sora_content_store_full",
            "1 while downloads find the content store full",
            int(keeper.full_since is not None),
        )
        yield GaugeMetricFamily(
            "sora_content_pending_space",
            "Finished tasks waiting for space to store their video",
            len(keeper.pending_space),
        )


_CIRCUIT_STATES = ("closed", "half_open", "open", "disabled")


def _channel_metrics(channels: list[ChannelStatistics]) -> Iterator[Metric]:
    """Per upstream channel: circuit state, jobs, calls, errors, error rate, latency."""
    state = GaugeMetricFamily(
        "sora_channel_state",
        "1 for the channel's current state (closed, half_open, open, disabled)",
        labels=["channel", "state"],
    )
    disabled = GaugeMetricFamily(
        "sora_channel_disabled",
        "1 while the channel is disabled (401/403 or config)",
        labels=["channel"],
    )
    jobs = GaugeMetricFamily(
        "sora_channel_jobs_running", "Upstream jobs unfinished on the channel", labels=["channel"]
    )
    calls = CounterMetricFamily(
        "sora_channel_calls", "Calls to the channel's upstream", labels=["channel"]
    )
    errors = CounterMetricFamily(
        "sora_channel_errors", "Calls to the channel that failed it", labels=["channel"]
    )
    rate = GaugeMetricFamily(
        "sora_channel_error_rate", "Failed share of the last 100 calls", labels=["channel"]
    )
    latency = GaugeMetricFamily(
        "sora_channel_latency_seconds", "Mean latency of the last 100 calls", labels=["channel"]
    )
    for c in channels:
        for name in _CIRCUIT_STATES:
            state.add_metric([c.name, name], int(c.state == name))
        disabled.add_metric([c.name], int(c.state == "disabled"))
        jobs.add_metric([c.name], c.jobs_running)
        calls.add_metric([c.name], c.calls)
        errors.add_metric([c.name], c.errors)
        rate.add_metric([c.name], c.error_rate)
        latency.add_metric([c.name], (c.latency_ms or 0.0) / 1000)
    yield from (state, disabled, jobs, calls, errors, rate, latency)


class ConnectionCollector(Collector):
    """The listener's figures: what is open, refused, dropped by the guard or timed out."""

    def __init__(self, connections: Connections) -> None:
        self._connections = connections

    def collect(self) -> Iterator[Metric]:
        stats = self._connections.statistics()
        yield GaugeMetricFamily("sora_connections_open", "Open client connections", stats.open)
        for name, help_text, value in (
            ("accepted", "Client connections accepted", stats.accepted),
            ("refused", "Connections answered 503 above the connection cap", stats.refused),
            (
                "crashed",
                "Connections dropped because they raised (a protocol error)",
                stats.crashed,
            ),
            (
                "timed_out",
                "Connections closed by a header, keep-alive or silence deadline",
                stats.timed_out,
            ),
        ):
            yield CounterMetricFamily(f"sora_connections_{name}", help_text, value)


class ObservedApp:
    """ASGI middleware: request id (context, header), metrics and the access log."""

    def __init__(self, inner: ASGIApp, metrics: HttpMetrics) -> None:
        self._inner = inner
        self._metrics = metrics

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            await self._inner(scope, receive, send)
            return
        current = RequestScope(request_id_from(scope.get("headers", [])))
        token = CURRENT_REQUEST.set(current)
        header = (_HEADER_BYTES, current.id.encode())
        status = 500
        started = time.perf_counter()
        body_pending = kind == "http" and _has_body(scope.get("headers", []))

        async def receive_body() -> Any:
            nonlocal body_pending
            message = await receive()
            last = message["type"] == "http.request" and not message.get("more_body", False)
            if last or message["type"] == "http.disconnect":
                body_pending = False
            return message

        async def send_with_id(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] in ("http.response.start", "websocket.accept"):
                status = message.get("status", 101)
                headers = list(message.get("headers") or [])
                if all(name.lower() != _HEADER_BYTES for name, _ in headers):
                    headers.append(header)
                if body_pending:
                    # Answered before the body was read (401, 413, a bad header...): the
                    # rest of it is still on the wire and the server stops reading, so a
                    # next request on this connection would hang. End the connection.
                    headers = [(n, v) for n, v in headers if n.lower() != b"connection"]
                    headers.append((b"connection", b"close"))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self._inner(scope, receive_body, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            current.active = False
            CURRENT_REQUEST.reset(token)
            method = scope.get("method", "WS")
            path = scope.get("path", "")
            if kind == "http":
                self._metrics.observe(method, current.route or UNMATCHED, status, elapsed)
            # The path only: query strings carry link signatures and WebSocket tokens.
            level = logging.DEBUG if path in _QUIET_PATHS else logging.INFO
            access_log.log(
                level,
                "%s %s %s %.1f ms",
                method,
                path,
                status,
                elapsed * 1000,
                extra={
                    "request_id": current.id,  # the context is gone by now
                    "method": method,
                    "path": path,
                    "route": current.route,
                    "status": status,
                    "durationMs": round(elapsed * 1000, 1),
                },
            )


blueprint = Blueprint("observe", __name__)


@blueprint.get("/metrics")
@documented(None, storage=False, raw={200: ("text/plain",)})
async def metrics() -> Response:
    """Prometheus metrics of this process (text exposition format)."""
    with contextlib.suppress(StorageError):
        await ctx().services.storage.writable()  # a full database: is it still full?
    registry = current_app.extensions[REGISTRY_KEY].registry
    return Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)


def install(app: Quart, services: Services, connections: Connections | None = None) -> HttpMetrics:
    """Wrap the app in the middleware and serve ``/metrics``; call before other hooks."""
    http_metrics = HttpMetrics(services, connections)
    app.extensions[REGISTRY_KEY] = http_metrics
    app.asgi_app = ObservedApp(app.asgi_app, http_metrics)  # type: ignore[method-assign,assignment]

    @app.before_request
    async def _remember_route() -> None:
        current = CURRENT_REQUEST.get()
        if current is not None and request.url_rule is not None:
            current.route = request.url_rule.rule

    app.register_blueprint(blueprint)
    return http_metrics
