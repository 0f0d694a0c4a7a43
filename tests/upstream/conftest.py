"""Upstream test fixtures: an in-process simulator on an ephemeral port plus an admin helper."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import httpx2
import pytest
import trio

from sora_actors.upstream import RetryPolicy, UpstreamConfig
from sora_actors.upstream.fake import DurationDistribution, SimulatorConfig, serve_simulator
from sora_actors.upstream.fake.engine import Engine

# Jobs take 2..4 simulated seconds of queue+run at x20 -> 0.1..0.2 s of real time.
FAST = DurationDistribution(
    queue_min_s=0.5, queue_max_s=1.0, run_median_s=2.0, run_sigma=0.2, run_min_s=1.5, run_max_s=3.0
)


class Admin:
    """Thin client for the simulator's /__admin endpoints."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.client = httpx2.AsyncClient(base_url=root, timeout=5.0)

    async def stats(self) -> dict[str, Any]:
        r = await self.client.get("/__admin/stats")
        r.raise_for_status()
        doc: dict[str, Any] = r.json()
        return doc

    async def requests(self) -> list[dict[str, Any]]:
        r = await self.client.get("/__admin/requests")
        r.raise_for_status()
        doc: list[dict[str, Any]] = r.json()
        return doc

    async def faults(self, **rates: Any) -> dict[str, Any]:
        r = await self.client.post("/__admin/faults", json=rates)
        r.raise_for_status()
        doc: dict[str, Any] = r.json()
        return doc

    async def limits(self, **limits: Any) -> dict[str, Any]:
        r = await self.client.post("/__admin/limits", json=limits)
        r.raise_for_status()
        doc: dict[str, Any] = r.json()
        return doc

    async def reset(self, faults: bool = False) -> None:
        r = await self.client.post("/__admin/reset", json={"faults": faults})
        r.raise_for_status()

    async def force(self, job_id: str, outcome: str) -> dict[str, Any]:
        r = await self.client.post(f"/__admin/jobs/{job_id}/{outcome}", json={})
        r.raise_for_status()
        doc: dict[str, Any] = r.json()
        return doc


@dataclass
class Sim:
    base_url: str
    root: str
    engine: Engine
    admin: Admin
    config: SimulatorConfig

    def provider_config(self, **kw: Any) -> UpstreamConfig:
        """A client config for this simulator with test-speed retries and no client pacing."""
        values: dict[str, Any] = {
            "base_url": self.base_url,
            "api_key": "k1",
            "auth_style": "bare" if self.config.dialect == "gateway" else "bearer",
            "max_requests_per_second": None,
            "max_concurrent_jobs": None,
            "read_timeout_s": 2.0,
            "retry": RetryPolicy(max_attempts=10, base_delay_s=0.01, max_delay_s=0.05),
        }
        if self.config.dialect == "gateway":
            values["allowed_seconds"] = (4, 5, 8, 10, 12, 15)
        values.update(kw)
        return UpstreamConfig(**values)


SimFactory = Callable[..., Awaitable[Sim]]


@pytest.fixture
async def start_sim(nursery: trio.Nursery) -> AsyncIterator[SimFactory]:
    """Start simulators inside the test's nursery (cancelled at test end)."""
    admins: list[Admin] = []

    async def start(**kw: Any) -> Sim:
        kw.setdefault("time_scale", 20.0)
        kw.setdefault("durations", FAST)
        kw.setdefault("seed", 1)
        config = SimulatorConfig(**kw)
        engine = Engine(config)
        url: str = await nursery.start(
            partial(serve_simulator, config, "127.0.0.1", 0, engine=engine)
        )
        path = config.effective_base_path
        root = url[: -len(path)] if path else url
        admin = Admin(root)
        admins.append(admin)
        return Sim(url, root, engine, admin, config)

    yield start
    for a in admins:
        await a.client.aclose()


@pytest.fixture
async def sim(start_sim: SimFactory) -> Sim:
    return await start_sim()
