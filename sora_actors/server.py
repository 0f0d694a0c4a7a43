"""Running the service: storage, the app-lifetime nursery and Hypercorn, shut down in order.

Shutdown sequence (on SIGINT/SIGTERM or when the trigger returns):
1. WebSocket clients are closed with 1001 (going away); Hypercorn stops accepting and gives
   in-flight requests ``shutdown_grace_seconds``.
2. The runtime (actors, hub, in-process simulator) is cancelled; actors stop at their next
   checkpoint, and a unit of work already under way completes first.
3. Storage closes.
"""

from __future__ import annotations

import logging
import math
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial

import trio
from hypercorn.config import Config as HypercornConfig
from quart_trio import QuartTrio

from .admins import ensure_admin
from .garbage import collecting
from .http.app import create_app
from .http.listener import ConnectionLimits, Connections, serve
from .http.ws import encode_event
from .hub import Hub
from .runtime import open_runtime
from .services import Services
from .settings import Settings
from .storage import open_storage

log = logging.getLogger("sora_actors")

Trigger = Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class Running:
    """What `run_server` reports once it listens: where, and what it runs."""

    url: str
    services: Services
    app: QuartTrio


async def wait_for_signal() -> None:
    """Return on the first SIGINT or SIGTERM."""
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            log.info("received %s: shutting down", signal.Signals(signum).name)
            return


def hypercorn_config(settings: Settings, host: str, port: int) -> HypercornConfig:
    config = HypercornConfig()
    config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    config.graceful_timeout = settings.shutdown_grace_seconds
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")
    config.keep_alive_timeout = settings.keep_alive_seconds
    # WebSocket: pings keep TCP probing dead peers; oversized messages are closed with 1009.
    config.websocket_ping_interval = settings.ws_ping_seconds or None
    config.websocket_max_message_size = settings.ws_max_message_bytes
    return config


def connection_limits(settings: Settings) -> ConnectionLimits:
    return ConnectionLimits(
        max_connections=settings.max_connections or ConnectionLimits.default_max_connections(),
        header_timeout=settings.header_timeout_seconds,
        keep_alive=settings.keep_alive_seconds,
        send_timeout=settings.send_timeout_seconds,
        # A live client answers each ping: two missed ones (and some slack) mean it is not.
        websocket_idle=2 * settings.ws_ping_seconds + 5 if settings.ws_ping_seconds else math.inf,
    )


async def _then_close_websockets(trigger: Trigger, hub: Hub) -> None:
    """Wait for the trigger, then close WebSocket clients with 1001 (going away)."""
    await trigger()
    hub.close_all("the server is shutting down")


async def run_server(
    settings: Settings,
    *,
    host: str | None = None,
    port: int | None = None,
    shutdown_trigger: Trigger | None = None,
    task_status: trio.TaskStatus[Running] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve until the trigger returns (default: a signal); report `Running` once bound."""
    host = settings.host if host is None else host
    port = settings.port if port is None else port
    if settings.jwt_secret_generated:
        log.warning(
            "no SORA_JWT_SECRET set: generated a random one for this process "
            "(tokens will not survive a restart; set one in production)"
        )
    url = settings.resolved_database_url
    async with (
        collecting(settings.gc_freeze_seconds, settings.gc_major_growth) as collector,
        open_storage(url) as storage,
        open_runtime(settings, storage, encode=encode_event) as runtime,
    ):
        log.info("database ready: %s", storage.dialect)
        await ensure_admin(settings, storage)
        services = Services(settings=settings, storage=storage, runtime=runtime)
        connections = Connections(connection_limits(settings))
        app = create_app(services, connections)
        config = hypercorn_config(settings, host, port)
        async with trio.open_nursery() as nursery:
            binds: list[str] = await nursery.start(
                partial(
                    serve,
                    app,
                    config,
                    connections,
                    shutdown_trigger=partial(
                        _then_close_websockets, shutdown_trigger or wait_for_signal, runtime.hub
                    ),
                )
            )
            if collector is not None:
                collector.follow(connections.counts)
            log.info("sora-actors %s listening on %s", services.version, ", ".join(binds))
            task_status.started(Running(binds[0], services, app))
        # Hypercorn has drained; leaving the blocks stops the actors, then storage.
    log.info("stopped")
