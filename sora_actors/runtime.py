"""The actor runtime of one process: upstream provider, event hub, leases and supervisor.

Every long-running loop of the runtime (the supervisor, the hub's sweeper, the relay, the
content sweep) starts here, in one nursery, and never returns until it is cancelled.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from functools import partial

import trio

from .access import Access
from .backoff import Backoff
from .channel_registry import ChannelRegistry
from .channels import Channel, ChannelInfo, ChannelSet, CircuitBreaker
from .content_store import LocalContentStore
from .control import ControlEvents
from .hub import Encode, Hub
from .instrument import CountingProvider
from .keeper import ContentKeeper
from .leases import LeaseConfig, Leases
from .plans import Plans
from .polling import PollingPolicy, PredictivePolicy, SteppedSchedule, WebhookWatch
from .relay import Relay
from .settings import ChannelSettings, Settings
from .storage import Activity, Storage
from .supervisor import RestartIntensity, Supervisor
from .system_config import SystemConfig
from .task import ActorConfig
from .task_service import TaskService
from .upstream import Limiter, OpenAICompatProvider, Provider, ReplicateProvider, UpstreamConfig
from .upstream.fake import SimulatorConfig, serve_simulator
from .upstream.keyring import KeyRing
from .upstream.mapping import DEFAULT_MODEL_MAP, OPENAI_SECONDS
from .upstream.replicate import REPLICATE_MODEL_MAP
from .webhook_inbox import WebhookInbox

log = logging.getLogger("sora_actors")

SIMULATOR_KEY = "sk-in-process-simulator"


@dataclass
class Runtime:
    """The parts of the runtime others use; each running part has one ``statistics()``."""

    provider: CountingProvider  # the first channel's (its counts are every channel's)
    channels: ChannelSet
    channel_specs: tuple[ChannelSettings, ...]  # the settings' channels
    channel_registry: ChannelRegistry  # the effective ones, admins' changes applied
    hub: Hub
    supervisor: Supervisor
    relay: Relay
    limiter: Limiter
    upstream_url: str
    resumed: int
    content: ContentKeeper
    tasks: TaskService
    access: Access
    webhooks: WebhookInbox
    plans: Plans
    config: SystemConfig  # the run-time settings operators change (issue 14)


def polling_policy(settings: Settings) -> PollingPolicy:
    policy = PredictivePolicy() if settings.polling_policy == "predictive" else SteppedSchedule()
    if settings.polling_speedup != 1.0:
        return policy.scaled(settings.polling_speedup)
    return policy


def actor_config(settings: Settings) -> ActorConfig:
    return ActorConfig(
        policy=polling_policy(settings),
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


def default_channel(settings: Settings, base_url: str, api_key: str) -> ChannelSettings:
    """The single ``upstream_*`` settings as the one channel "default"."""
    return ChannelSettings(
        name="default",
        base_url=base_url,
        api_keys=(api_key or "-",),
        auth_style=settings.upstream_auth_style,
        max_concurrent_jobs=settings.upstream_max_concurrent_jobs,
        max_requests_per_second=settings.upstream_max_requests_per_second,
        webhook_secret=settings.upstream_webhook_secret,
    )


def webhook_url(settings: Settings, spec: ChannelSettings) -> str | None:
    """Where the channel calls us back, told to it at create (Replicate): only when it has a
    webhook secret and we know our public address."""
    if not (spec.webhook_secret and settings.public_base_url):
        return None
    return f"{settings.public_base_url.rstrip('/')}/api/upstream/webhooks/{spec.name}"


async def open_channel(
    settings: Settings,
    spec: ChannelSettings,
    stack: AsyncExitStack,
    counts: tuple[Counter[str], Counter[str]],
    storage: Storage,
) -> tuple[Channel, CountingProvider]:
    """One channel: an adapter per key (each with its own limiter), counted, guarded."""
    base_map = REPLICATE_MODEL_MAP if spec.dialect == "replicate" else DEFAULT_MODEL_MAP
    adapter = ReplicateProvider if spec.dialect == "replicate" else OpenAICompatProvider
    limiters: list[Limiter] = []
    providers: list[Provider] = []
    for key in spec.api_keys:
        config = dataclasses.replace(
            upstream_config(settings, spec.base_url, key),
            auth_style=spec.auth_style,
            model_map={**base_map, **spec.model_map},
            allowed_seconds=spec.durations or OPENAI_SECONDS,
            max_requests_per_second=spec.max_requests_per_second,
            max_concurrent_jobs=spec.max_concurrent_jobs,
            webhook_url=webhook_url(settings, spec),
        )
        limiter = Limiter(config.max_requests_per_second, config.max_concurrent_jobs)
        limiters.append(limiter)
        providers.append(await stack.enter_async_context(adapter(config, limiter=limiter)))
    inner: Provider = providers[0] if len(providers) == 1 else KeyRing(providers, limiters)
    counted = CountingProvider(inner, calls=counts[0], errors=counts[1])

    async def disabled(channel: Channel, reason: str) -> None:
        """Tell admins: an activity log entry (the channel's state shows in /health)."""
        details = {"channel": channel.name, "reason": reason}
        await storage.accounts.log(Activity("channel_disabled", None, details))

    info = ChannelInfo(
        name=spec.name,
        dialect=spec.dialect,
        priority=spec.priority,
        weight=spec.weight,
        enabled=spec.enabled,
        models=spec.models,
        sizes=spec.sizes,
        durations=spec.durations,
        webhook_secret=spec.webhook_secret,
    )
    breaker = CircuitBreaker(
        settings.channel_failure_threshold,
        settings.channel_cooldown_seconds,
        max(settings.channel_cooldown_max_seconds, settings.channel_cooldown_seconds),
    )
    channel = Channel(info, counted, limiters=limiters, breaker=breaker, on_disabled=disabled)
    return channel, counted


@asynccontextmanager
async def open_channels(
    settings: Settings, specs: tuple[ChannelSettings, ...], storage: Storage
) -> AsyncIterator[tuple[ChannelRegistry, CountingProvider]]:
    """Every channel (the settings' overlaid by the admins' stored ones), open until the
    block ends; and the first one's counting provider (whose counts are every channel's:
    they share one tally, for /metrics). Channels added at run time open in the same stack."""
    counts: tuple[Counter[str], Counter[str]] = (Counter(), Counter())

    async def opener(spec: ChannelSettings, stack: AsyncExitStack) -> Channel:
        channel, _ = await open_channel(settings, spec, stack, counts, storage)
        return channel

    registry = ChannelRegistry(storage, specs, opener, refresh_s=settings.config_refresh_seconds)
    async with AsyncExitStack() as stack:
        channels = await registry.open(stack)
        counted = next(iter(channels.channels.values())).inner
        assert isinstance(counted, CountingProvider)
        yield registry, counted


@asynccontextmanager
async def open_runtime(
    settings: Settings,
    storage: Storage,
    *,
    encode: Encode,
    default_plan: Callable[[], str] | None = None,
) -> AsyncIterator[Runtime]:
    """Start the upstream (a simulator if none is configured), hub and supervisor.

    ``encode`` turns task events into what WebSocket clients receive (the http layer's).
    ``default_plan`` names the plan of users without a licence, asked at every decision
    (None: the settings' ``default_plan``).

    Leaving the block cancels every actor; they stop at their next checkpoint, and a unit
    of work already under way completes first (storage shields it).
    """
    config = SystemConfig(
        storage, refresh_s=settings.config_refresh_seconds, default_plan=settings.default_plan
    )
    # Unlicensed users get the operator's run-time choice (`PUT /api/admin/config`).
    plans = Plans(settings.plans, default_plan or (lambda: config.current().default_plan))
    async with trio.open_nursery() as nursery:
        specs: tuple[ChannelSettings, ...] = settings.channels
        if specs:
            base_url, api_key = specs[0].base_url, specs[0].api_keys[0]
            log.info("upstream channels: %s", ", ".join(spec.name for spec in specs))
        elif settings.upstream_url:
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
        if not specs:
            specs = (default_channel(settings, base_url, api_key),)
        async with open_channels(settings, specs, storage) as (registry, provider):
            channels = registry.channels
            assert channels is not None
            hub = Hub(
                encode,
                queue_size=settings.ws_send_queue_size,
                stuck_seconds=settings.ws_stuck_seconds,
            )
            tasks = TaskService(
                storage, hub, deadline_s=settings.task_deadline_seconds, plans=plans
            )
            content = ContentKeeper(
                LocalContentStore(settings.resolved_content_dir),
                storage=storage,
                provider=channels,
                tasks=tasks,
                retention_s=settings.content_retention_days * 86400,
                sweep_interval_s=settings.content_sweep_interval_seconds,
            )
            tasks.keep_copies_with(content)
            watch = WebhookWatch()
            supervisor = Supervisor(
                storage=storage,
                provider=channels,
                tasks=tasks,
                actor_config=dataclasses.replace(
                    actor_config(settings), content=content, webhooks=watch
                ),
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
            await config.load()
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
                actors.start_soon(config.run, name="run-time config")
                actors.start_soon(registry.run, name="run-time channels")
                yield Runtime(
                    provider=provider,
                    channels=channels,
                    channel_specs=specs,
                    channel_registry=registry,
                    hub=hub,
                    supervisor=supervisor,
                    relay=relay,
                    limiter=channels.default.limiters[0],
                    upstream_url=base_url,
                    resumed=resumed,
                    content=content,
                    tasks=tasks,
                    access=access,
                    webhooks=WebhookInbox(
                        registry.secrets,
                        storage=storage,
                        supervisor=supervisor,
                        watch=watch,
                        dialects=registry.dialects,
                    ),
                    plans=plans,
                    config=config,
                )
                actors.cancel_scope.cancel()
        nursery.cancel_scope.cancel()
