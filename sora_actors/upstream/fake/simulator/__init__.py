"""A fake OpenAI-Videos-compatible upstream for tests, demos and load runs.

Start in-process with `serve_simulator` inside a Trio nursery, or from the
command line (`sora-actors simulator`, or `python -m sora_actors.upstream.fake.simulator`).
"""

from __future__ import annotations

import argparse

import httpx2
import trio

from ..engine import (
    DurationDistribution,
    Engine,
    FaultRates,
    KeyLimits,
    SimulatorConfig,
    WebhookConfig,
)
from ..webhooks import announce_ends, http_delivery
from .app import SimulatorApp
from .server import serve_http

__all__ = [
    "DurationDistribution",
    "FaultRates",
    "KeyLimits",
    "SimulatorApp",
    "SimulatorConfig",
    "add_simulator_arguments",
    "serve_simulator",
    "simulator_config_from_args",
]


async def serve_simulator(
    config: SimulatorConfig,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    engine: Engine | None = None,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Bind (port 0 = ephemeral), `task_status.started(base_url)`, serve until cancelled.

    Pass `engine` to inspect or drive the simulator's state directly from an in-process test.
    """
    app = SimulatorApp(config, engine)
    async with httpx2.AsyncClient(timeout=10) as client, trio.open_nursery() as nursery:
        # Job ends are called back when webhooks are configured (now or later by the admin API).
        nursery.start_soon(
            announce_ends, app.engine, http_delivery(app.engine, client, app.webhook_message())
        )
        port_bound: int = await nursery.start(serve_http, app, host, port)
        shown = f"[{host}]" if ":" in host else host
        task_status.started(f"http://{shown}:{port_bound}{config.effective_base_path}")


def add_simulator_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `sora-actors simulator`."""
    d = SimulatorConfig()
    f = FaultRates()
    dur = DurationDistribution()
    lim = KeyLimits()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8089)
    parser.add_argument(
        "--time-scale",
        type=float,
        default=d.time_scale,
        help="run job timelines X times faster than real time",
    )
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument(
        "--api-key", default=None, help="the one accepted key (default: any non-empty key)"
    )
    parser.add_argument("--admin-token", default=None, help="protect /__admin/* with this token")
    parser.add_argument(
        "--base-path",
        default=None,
        help="API path prefix (default /v1, or /sora/v1 for --dialect gateway)",
    )
    parser.add_argument("--dialect", choices=("openai", "gateway", "replicate"), default=d.dialect)
    parser.add_argument("--fault-5xx", type=float, default=f.server_error, metavar="RATE")
    parser.add_argument("--fault-429", type=float, default=f.rate_limit, metavar="RATE")
    parser.add_argument("--fault-slow", type=float, default=f.slow, metavar="RATE")
    parser.add_argument("--fault-drop", type=float, default=f.drop, metavar="RATE")
    parser.add_argument("--fault-malformed", type=float, default=f.malformed, metavar="RATE")
    parser.add_argument(
        "--fault-content-policy", type=float, default=f.content_policy, metavar="RATE"
    )
    parser.add_argument("--retry-after-ms", type=int, default=f.retry_after_ms)
    parser.add_argument("--slow-seconds", type=float, default=f.slow_s)
    parser.add_argument(
        "--queue-min", type=float, default=dur.queue_min_s, help="simulated seconds"
    )
    parser.add_argument("--queue-max", type=float, default=dur.queue_max_s)
    parser.add_argument("--run-median", type=float, default=dur.run_median_s)
    parser.add_argument("--run-sigma", type=float, default=dur.run_sigma)
    parser.add_argument("--run-min", type=float, default=dur.run_min_s)
    parser.add_argument("--run-max", type=float, default=dur.run_max_s)
    parser.add_argument(
        "--content-ttl",
        type=float,
        default=d.content_ttl_s,
        help="simulated seconds from completion to expiry",
    )
    parser.add_argument(
        "--key-rpm", type=int, default=lim.requests_per_window, help="requests per minute per key"
    )
    parser.add_argument(
        "--key-max-jobs", type=int, default=lim.max_concurrent_jobs, help="concurrent jobs per key"
    )
    parser.add_argument(
        "--webhook-url", default=None, help="call back here when a job ends (Standard Webhooks)"
    )
    parser.add_argument(
        "--webhook-secret",
        default=None,
        help="whsec_... to sign webhooks with (alone: only to a create's own webhook URL)",
    )
    parser.add_argument("--webhook-loss", type=float, default=0.0, metavar="RATE")
    parser.add_argument("--webhook-delay-min", type=float, default=0.2, metavar="SECONDS")
    parser.add_argument("--webhook-delay-max", type=float, default=0.8, metavar="SECONDS")


def simulator_config_from_args(ns: argparse.Namespace) -> SimulatorConfig:
    """Namespace from `add_simulator_arguments` -> SimulatorConfig."""
    faults = FaultRates(
        server_error=ns.fault_5xx,
        rate_limit=ns.fault_429,
        slow=ns.fault_slow,
        drop=ns.fault_drop,
        malformed=ns.fault_malformed,
        content_policy=ns.fault_content_policy,
        retry_after_ms=ns.retry_after_ms,
        slow_s=ns.slow_seconds,
    )
    faults.validate()
    webhooks = None
    if ns.webhook_url or ns.webhook_secret:
        if not ns.webhook_secret:
            raise SystemExit("--webhook-url needs --webhook-secret")
        # A secret alone: only creates that name their webhook URL are called back (Replicate).
        webhooks = WebhookConfig(
            ns.webhook_url or "",
            ns.webhook_secret,
            ns.webhook_loss,
            ns.webhook_delay_min,
            ns.webhook_delay_max,
        )
        webhooks.validate()
    return SimulatorConfig(
        webhooks=webhooks,
        time_scale=ns.time_scale,
        seed=ns.seed,
        api_key=ns.api_key,
        base_path=ns.base_path,
        dialect=ns.dialect,
        faults=faults,
        durations=DurationDistribution(
            queue_min_s=ns.queue_min,
            queue_max_s=ns.queue_max,
            run_median_s=ns.run_median,
            run_sigma=ns.run_sigma,
            run_min_s=ns.run_min,
            run_max_s=ns.run_max,
        ),
        content_ttl_s=ns.content_ttl,
        limits=KeyLimits(
            requests_per_window=ns.key_rpm, window_s=60.0, max_concurrent_jobs=ns.key_max_jobs
        ),
        admin_token=ns.admin_token,
    )
