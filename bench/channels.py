"""Benchmark (run by hand): what one channel's outage does to the other channel's tasks.

Virtual time (a MockClock that jumps only after 10 ms of real idleness, so database I/O is
not skipped over), real SQLite, the real actors and the old polling schedule, two in-memory
upstreams "a" and "b" of equal priority and weight. Tasks arrive one a second; jobs take
5-10 s in the queue and 60-120 s to run. In the outage run, "a" refuses every connection
from --down-at for --down-for seconds (as a killed process does), then comes back.

Prints, per run: where tasks went, their latency (accepted -> COMPLETED, virtual seconds)
split by channel, how many creates failed over, and calls per task on "b".

    python bench/channels.py --tasks 200
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import uuid
from collections import Counter
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

import trio
import trio.testing
from measure import percentile

from sora_actors.channels import Channel, ChannelInfo, ChannelSet
from sora_actors.hub import Hub, TaskEvent
from sora_actors.storage import Activity, open_storage
from sora_actors.supervisor import Supervisor
from sora_actors.task import ActorConfig
from sora_actors.task_service import Order, TaskService
from sora_actors.upstream import ContentVariant, ErrorKind, UpstreamError
from sora_actors.upstream.fake import DurationDistribution, MemoryProvider, SimulatorConfig

JOBS = DurationDistribution(
    queue_min_s=5, queue_max_s=10, run_median_s=90, run_sigma=0.2, run_min_s=60, run_max_s=120
)


class Switch:
    """An upstream that can be switched off: every call is refused as a dead port is."""

    def __init__(self, inner: MemoryProvider) -> None:
        self.inner = inner
        self.down = False
        self.limiter = inner.limiter
        self.refused: Counter[str] = Counter()

    def _check(self, method: str) -> None:
        if self.down:
            self.refused[method] += 1
            raise UpstreamError(ErrorKind.TRANSIENT, "ConnectError: connection refused")

    async def submit(self, *a: Any, **kw: Any) -> Any:
        self._check("submit")
        return await self.inner.submit(*a, **kw)

    async def get(self, job_id: str) -> Any:
        self._check("get")
        return await self.inner.get(job_id)

    async def find_jobs(self, *a: Any, **kw: Any) -> Any:
        self._check("find_jobs")
        return await self.inner.find_jobs(*a, **kw)

    async def fetch_content(
        self, job_id: str, variant: ContentVariant = "video"
    ) -> AsyncGenerator[bytes, None]:
        self._check("fetch_content")
        async for chunk in self.inner.fetch_content(job_id, variant):
            yield chunk

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def run(tasks: int, down_at: float | None, down_for: float, url: str) -> dict[str, Any]:
    a, b = (
        Switch(MemoryProvider(SimulatorConfig(durations=JOBS, seed=1))),
        MemoryProvider(SimulatorConfig(durations=JOBS, seed=2)),
    )
    channels = ChannelSet(
        [
            Channel(ChannelInfo("a"), a, limiters=(a.limiter,)),  # type: ignore[arg-type]
            Channel(ChannelInfo("b"), b, limiters=(b.limiter,)),
        ]
    )
    accepted: dict[str, float] = {}
    completed: dict[str, float] = {}
    recovered_at: float | None = None
    first_create_on_a_after: float | None = None

    def listen(event: TaskEvent) -> None:
        nonlocal first_create_on_a_after
        task = event.task
        if task.status == "COMPLETED":
            completed[task.video_id] = trio.current_time()
        if (
            recovered_at is not None
            and first_create_on_a_after is None
            and task.phase == "POLLING"
            and task.channel == "a"
            and event.message
            and event.message.startswith("submitted")
        ):
            first_create_on_a_after = trio.current_time() - recovered_at

    async with open_storage(url) as storage:
        user = await storage.accounts.create_user(
            f"bench-{uuid.uuid4().hex[:6]}", None, "x", Activity("register")
        )
        hub = Hub()
        hub.add_listener(listen)
        service = TaskService(storage, hub)
        supervisor = Supervisor(
            storage=storage, provider=channels, tasks=service, actor_config=ActorConfig()
        )
        async with trio.open_nursery() as nursery:
            await nursery.start(supervisor.run)
            t0 = trio.current_time()

            async def outage() -> None:
                nonlocal recovered_at
                assert down_at is not None
                await trio.sleep_until(t0 + down_at)
                a.down = True
                await trio.sleep(down_for)
                a.down = False
                recovered_at = trio.current_time()

            if down_at is not None:
                nursery.start_soon(outage)
            for i in range(tasks):
                task, _ = await service.accept(user.id, Order(f"bench {i}"))
                accepted[task.video_id] = trio.current_time()
                await trio.sleep(1.0)
            while len(completed) < tasks:
                await trio.sleep(5.0)
            nursery.cancel_scope.cancel()
        rows = {t.video_id: t for t in await storage.tasks.unfinished()}
        assert not rows, f"{len(rows)} tasks unfinished"
        where = {vid: (await storage.tasks.get(vid)).channel for vid in accepted}  # type: ignore[union-attr]
    latency = {vid: completed[vid] - accepted[vid] for vid in accepted}
    by = {name: [latency[v] for v, c in where.items() if c == name] for name in ("a", "b")}
    b_calls = sum(b.calls.values())
    return {
        "tasks": {name: len(values) for name, values in by.items()},
        "latency": {
            name: (statistics.mean(v), percentile(v, 95)) if v else (0.0, 0.0)
            for name, v in by.items()
        },
        "moves": a.refused["submit"],
        "a_refused": dict(a.refused),
        "b_calls_per_task": b_calls / max(1, len(by["b"])),
        "a_back_after": first_create_on_a_after,
        "jobs": (len(a.inner.engine.jobs), len(b.engine.jobs)),
    }


def show(name: str, r: dict[str, Any]) -> None:
    lat = r["latency"]
    print(
        f"{name:<9} on a/b {r['tasks']['a']:>4}/{r['tasks']['b']:<4}"
        f" latency a mean {lat['a'][0]:6.1f} s p95 {lat['a'][1]:6.1f} s"
        f" | b mean {lat['b'][0]:6.1f} s p95 {lat['b'][1]:6.1f} s"
        f" | creates refused by a (failed over) {r['moves']:>3}"
        f" | b calls/task {r['b_calls_per_task']:5.1f}"
        f" | upstream jobs a/b {r['jobs'][0]}/{r['jobs'][1]}"
        + (
            f" | a took creates again {r['a_back_after']:.1f} s after it came back"
            if r["a_back_after"] is not None
            else ""
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--down-at", type=float, default=60.0)
    parser.add_argument("--down-for", type=float, default=120.0)
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()
    results = {}
    for name, down_at in (("baseline", None), ("outage", args.down_at)):
        with tempfile.TemporaryDirectory() as tmp:
            url = args.database_url or f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
            clock = trio.testing.MockClock(autojump_threshold=0.01)
            results[name] = trio.run(run, args.tasks, down_at, args.down_for, url, clock=clock)
    print(
        f"{args.tasks} tasks, one a second; outage of a from t={args.down_at:g} s"
        f" for {args.down_for:g} s (virtual time)"
    )
    for name, r in results.items():
        show(name, r)
    base, out = results["baseline"]["latency"]["b"], results["outage"]["latency"]["b"]
    print(f"calls refused by a during the outage: {results['outage']['a_refused']}")
    print(f"b's tasks: mean latency x{out[0] / base[0]:.3f}, p95 x{out[1] / base[1]:.3f}")


if __name__ == "__main__":
    main()
