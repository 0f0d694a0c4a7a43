"""The actor runtime of one process: upstream provider, event hub, leases and supervisor.

Every long-running loop of the runtime (the supervisor, the hub's sweeper, the relay, the
content sweep) starts here, in one nursery, and never returns until it is cancelled.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial

import trio

from .access import Access
from .backoff import Backoff
from .content_store import LocalContentStore
from .control import ControlEvents
from .hub import Encode, Hub
from .instrument import CountingProvider
from .keeper import ContentKeeper
from .leases import LeaseConfig, Leases
from .polling import PollingPolicy, ScaledSchedule, SteppedSchedule
from .relay import Relay
from .settings import Settings
from .storage import Storage
from .supervisor import RestartIntensity, Supervisor
from .task import ActorConfig
from .task_service import TaskService
from .upstream import Limiter, OpenAICompatProvider, UpstreamConfig
from .upstream.fake import SimulatorConfig, serve_simulator

log = logging.getLogger("sora_actors")

SIMULATOR_KEY = "sk-in-process-simulator"


@dataclass
class Runtime:
    """The parts of the runtime others use; each running part has one ``statistics()``."""

    provider: CountingProvider
    hub: Hub
    supervisor: Supervisor
    relay: Relay
    limiter: Limiter
    upstream_url: str
    resumed: int
    content: ContentKeeper
    tasks: TaskService
    access: Access


def actor_config(settings: Settings) -> ActorConfig:
    policy: PollingPolicy = SteppedSchedule()
    if settings.polling_speedup != 1.0:
        policy = ScaledSchedule(policy, settings.polling_speedup)
    return ActorConfig(
        policy=policy,
        task_deadline_s=settings.task_deadline_seconds,
        submit_settle_s=settings.submit_settle_seconds,
        space_retry=Backoff(
            settings.content_space_retry_seconds, settings.content_space_retry_max_seconds
        ),
    )


def upstream_config(settings: Settings, base_url: str, api_key: str) -> UpstreamConfig:
    return UpstreamConfig(
        user_agent=f"sora-actors/{settings.resolved_instance_id}",
        base_url=base_url,
        api_key=api_key,
        auth_style=settings.upstream_auth_style,
        read_timeout_s=settings.upstream_timeout_seconds,
        max_requests_per_second=settings.upstream_max_requests_per_second,
        max_concurrent_jobs=settings.upstream_max_concurrent_jobs,
    )


@asynccontextmanager
async def open_runtime(
    settings: Settings, storage: Storage, *, encode: Encode
) -> AsyncIterator[Runtime]:
    """Start the upstream (a simulator if none is configured), hub and supervisor.

    ``encode`` turns task events into what WebSocket clients receive (the http layer's).

    Leaving the block cancels every actor; they stop at their next checkpoint, and a unit
    of work already under way completes first (storage shields it).
    """
    async with trio.open_nursery() as nursery:
        if settings.upstream_url:
            base_url, api_key = settings.upstream_url, settings.upstream_api_key
            log.info("upstream: %s", base_url)
        else:
            simulator = SimulatorConfig(time_scale=settings.simulator_time_scale)
            base_url = await nursery.start(partial(serve_simulator, simulator))
            api_key = SIMULATOR_KEY
            log.info(
                "no SORA_UPSTREAM_URL set: using an in-process upstream simulator at %s "
                "(time scale %g)",
                base_url,
                settings.simulator_time_scale,
            )
        async with OpenAICompatProvider(upstream_config(settings, base_url, api_key)) as adapter:
            provider = CountingProvider(adapter)  # calls and errors, for /metrics
            hub = Hub(
                encode,
                queue_size=settings.ws_send_queue_size,
                stuck_seconds=settings.ws_stuck_seconds,
            )
            tasks = TaskService(storage, hub, deadline_s=settings.task_deadline_seconds)
            content = ContentKeeper(
                LocalContentStore(settings.resolved_content_dir),
                storage=storage,
                provider=provider,
                tasks=tasks,
                retention_s=settings.content_retention_days * 86400,
                sweep_interval_s=settings.content_sweep_interval_seconds,
            )
            supervisor = Supervisor(
                storage=storage,
                provider=provider,
                tasks=tasks,
                actor_config=dataclasses.replace(actor_config(settings), content=content),
                intensity=RestartIntensity(
                    max_restarts=settings.actor_max_restarts,
                    period_s=settings.actor_restart_period_seconds,
                ),
                leases=Leases(
                    storage,
                    LeaseConfig(
                        owner=settings.resolved_instance_id,
                        lease_s=settings.lease_seconds,
                        heartbeat_s=settings.lease_heartbeat_seconds,
                        claim_interval_s=settings.claim_interval_seconds,
                        # One SQLite file serves one process (storage enforces it).
                        exclusive=storage.dialect == "sqlite",
                    ),
                ),
            )
            # The actors' own nursery closes first, while the upstream client is still open.
            async with trio.open_nursery() as actors:
                resumed: int = await actors.start(supervisor.run)
                relay = Relay(storage, hub, supervisor)
                actors.start_soon(relay.run, name="event relay")
                actors.start_soon(hub.run, name="hub sweeper")
                actors.start_soon(content.sweep_forever, name="content retention sweep")
                control = ControlEvents(storage)
                access = Access(storage, control, ttl_s=settings.session_cache_seconds)
                actors.start_soon(control.run, name="control events")
                actors.start_soon(access.run, name="access watchers")
                yield Runtime(
                    provider=provider,
                    hub=hub,
                    supervisor=supervisor,
                    relay=relay,
                    limiter=adapter.limiter,
                    upstream_url=base_url,
                    resumed=resumed,
                    content=content,
                    tasks=tasks,
                    access=access,
                )
                actors.cancel_scope.cancel()
        nursery.cancel_scope.cancel()
