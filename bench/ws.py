"""Benchmark (run by hand): WebSocket push latency, memory per connection and CPU.

This process runs a real sora-actors server (Hypercorn trio worker, SQLite in a temporary
folder) and, once every client is subscribed, publishes synthetic task events straight into
its hub at ``--rate`` events per second for ``--seconds`` (each event carries its publish
time in ``message``). A separate client process (trio-websocket) opens ``--connections``
connections, each authenticated with ``?token=`` and subscribed to its own task, and
measures the time from publish to receipt.

Prints: push latency p50/p99/max, server RSS growth per connection, server and client CPU,
and the server's own stalls while publishing (garbage collections, event-loop lag, loop
batches over 100 ms). The client keeps its collector off while measuring: a load
generator's pauses are not the server's latency.

    python bench/ws.py [--connections 10000] [--rate 1000] [--seconds 60]
                       [--gc-freeze-seconds 0.5] [--trace-memory 30] [--profile FILE]
"""

from __future__ import annotations

import argparse
import cProfile
import dataclasses
import gc
import json
import os
import resource
import sys
import tempfile
import time
import tracemalloc
from functools import partial
from pathlib import Path
from typing import Any

import trio
from measure import cpu_seconds, percentile, rss_kib, sample_lag

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def raise_fd_limit() -> int:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def tracked_objects() -> int:
    """Objects the garbage collector tracks, frozen ones included."""
    return len(gc.get_objects()) + gc.get_freeze_count()


class Stalls:
    """A process's own pauses while publishing: garbage collections and event-loop lag."""

    def __init__(self) -> None:
        self.gc: dict[int, list[float]] = {0: [], 1: [], 2: []}
        self.lag: list[float] = []
        self._started = 0.0

    def on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.gc[info["generation"]].append((time.perf_counter() - self._started) * 1000)

    def report(self, who: str = "server") -> str:
        parts = [f"gen{g}: {len(d)} x, max {max(d, default=0):.1f} ms" for g, d in self.gc.items()]
        return (
            f"{who} stalls: GC {'; '.join(parts)}; loop lag p99 "
            f"{percentile(self.lag, 99) * 1000:.1f} ms, max {max(self.lag) * 1000:.1f} ms"
        )


class BatchWatch(trio.abc.Instrument):
    """Event-loop batches (io wait to io wait) over 100 ms: how many steps, and of what."""

    def __init__(self) -> None:
        self.origin = time.perf_counter()
        self._start = 0.0
        self._step = 0.0
        self._wait_from = time.perf_counter()
        self._steps: dict[str, list[float]] = {}
        self.reports: list[str] = []

    def after_io_wait(self, timeout: float) -> None:
        self._start = time.perf_counter()
        self._steps = {}
        overshoot = self._start - self._wait_from - timeout
        if overshoot > 0.05:
            self.reports.append(
                f"t={self._start - self.origin:.1f}s io wait overshot its {timeout * 1000:.0f} ms"
                f" timeout by {overshoot * 1000:.0f} ms"
            )

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        self._step = time.perf_counter()

    def after_task_step(self, task: trio.lowlevel.Task) -> None:
        took = time.perf_counter() - self._step
        entry = self._steps.setdefault(task.name.rsplit(".", 1)[-1], [0, 0.0])
        entry[0] += 1
        entry[1] += took

    def before_io_wait(self, timeout: float) -> None:
        self._wait_from = time.perf_counter()
        took = self._wait_from - self._start
        if took > 0.1 and self._start:
            top = sorted(self._steps.items(), key=lambda kv: -kv[1][1])[:6]
            steps = sum(int(v[0]) for v in self._steps.values())
            self.reports.append(
                f"t={self._start - self.origin:.1f}s batch {took * 1000:.0f} ms, {steps} steps: "
                + ", ".join(f"{name} {int(n)}x {t * 1000:.0f}ms" for name, (n, t) in top)
            )


def print_memory_sites(before: tracemalloc.Snapshot, connections: int, top: int) -> None:
    """Where the connections' memory was allocated (by source line), per connection."""
    gc.collect()
    diff = tracemalloc.take_snapshot().compare_to(before, "lineno")
    tracemalloc.stop()
    total = sum(d.size_diff for d in diff)
    print(f"traced allocations: {total / 1024 / connections:.1f} KiB per connection")
    for d in diff[:top]:
        site = d.traceback[0]
        print(
            f"  {d.size_diff / connections:6.0f} B {d.count_diff / connections:5.1f} blocks"
            f"  {site.filename.rsplit('site-packages/', 1)[-1]}:{site.lineno}"
        )


# -- the client process ---------------------------------------------------------------


async def client_main(plan: dict[str, Any]) -> None:
    from trio_websocket import connect_websocket_url

    url, token, video_ids = plan["url"], plan["token"], plan["videoIds"]
    latencies: list[float] = []
    measuring = False
    ready = 0
    all_ready = trio.Event()
    failures = 0

    async def one(video_id: str, limiter: trio.CapacityLimiter, nursery: trio.Nursery) -> None:
        nonlocal ready, failures
        try:
            async with limiter:
                connection = await connect_websocket_url(nursery, f"{url}?token={token}")
                await connection.send_message(
                    json.dumps({"type": "subscribe_task", "payload": {"videoId": video_id}})
                )
                while True:  # connected, authSuccess, subscribeSuccess, taskStatus
                    if '"taskStatus"' in await connection.get_message():
                        break
        except Exception:
            failures += 1
            return
        ready += 1
        if ready + failures == len(video_ids):
            all_ready.set()
        while True:
            raw = await connection.get_message()
            if measuring and '"taskProgress"' in raw:
                now = time.time_ns()
                stamp = json.loads(raw)["payload"]["message"]
                if isinstance(stamp, str) and stamp.isdigit():  # a synthetic event
                    latencies.append((now - int(stamp)) / 1e6)

    gc.disable()  # the load generator's own collections must not pause the measurement
    async with trio.open_nursery() as nursery:
        limiter = trio.CapacityLimiter(100)
        for video_id in video_ids:
            nursery.start_soon(one, video_id, limiter, nursery)
        await all_ready.wait()
        # The load generator must not add pauses of its own: move the 10k connections'
        # objects out of the cyclic collector's reach before measuring.
        gc.collect()
        gc.freeze()
        stalls = Stalls()
        gc.callbacks.append(stalls.on_gc)
        stop_sampling = trio.Event()
        nursery.start_soon(sample_lag, stalls.lag, stop_sampling)
        print(json.dumps({"ready": ready, "failures": failures}), flush=True)
        stdin = trio.lowlevel.FdStream(os.dup(0))
        buffer = b""
        while b"STOP" not in buffer:
            if b"GO" in buffer:
                measuring = True
                buffer = buffer.replace(b"GO", b"")
            chunk = await stdin.receive_some(64)
            if not chunk:
                break
            buffer += chunk
        result = {
            "received": len(latencies),
            "p50": percentile(latencies, 50) if latencies else None,
            "p99": percentile(latencies, 99) if latencies else None,
            "max": max(latencies) if latencies else None,
            "rss_kib": rss_kib(),
            "cpu_s": cpu_seconds(),
            "stalls": stalls.report("client"),
        }
        stop_sampling.set()
        print(json.dumps(result), flush=True)
        nursery.cancel_scope.cancel()


# -- the server process ---------------------------------------------------------------


async def server_main(args: argparse.Namespace) -> None:
    from sora_actors.http.security import Tokens
    from sora_actors.hub import TaskEvent
    from sora_actors.server import Running, run_server
    from sora_actors.settings import load
    from sora_actors.storage import Activity, NewSession
    from sora_actors.task_service import Order

    folder = Path(tempfile.mkdtemp(prefix="bench-ws-"))
    settings = load(
        environ={},
        overrides={
            "data_dir": str(folder),
            "jwt_secret": "bench-secret-" + "x" * 40,
            "bcrypt_rounds": 4,
            "shutdown_grace_seconds": 1.0,
            "ws_heartbeat_seconds": 30.0,
            "gc_freeze_seconds": args.gc_freeze_seconds,
        },
    )
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        running: Running = await nursery.start(
            partial(run_server, settings, host="127.0.0.1", port=0, shutdown_trigger=stop.wait)
        )
        services = running.services
        hub = services.runtime.hub
        user = await services.storage.accounts.create_user("bench", None, "x", Activity("register"))
        user_id = user.id
        token, who = Tokens(settings.jwt_secret, 86400).issue(user_id, "bench")
        # A token is good only for a stored session (sora_actors/access.py).
        await services.storage.accounts.record_login(
            NewSession(who.session_id, user_id, who.expires_at_ms), Activity("login", user_id)
        )
        print(f"creating {args.connections} tasks ...", flush=True)
        tasks = []
        runtime = services.runtime
        for _ in range(args.connections):
            # Cancelled at once (before their actors send anything upstream), so that the only
            # events during the measurement are the synthetic ones below.
            task, _ = await runtime.tasks.accept(user_id, Order("bench"))
            outcome = await runtime.supervisor.cancel(task.video_id, Activity("bench", user_id))
            assert outcome is not None and outcome.cancelled
            tasks.append(outcome.task)
        plan = folder / "plan.json"
        url = running.url.replace("http://", "ws://") + "/ws"
        plan.write_text(
            json.dumps({"url": url, "token": token, "videoIds": [t.video_id for t in tasks]})
        )
        rss_before, objects_before = rss_kib(), tracked_objects()
        print(f"allocated blocks before connections: {sys.getallocatedblocks()}", flush=True)
        if args.trace_memory:
            tracemalloc.start()
            snap_before = tracemalloc.take_snapshot()
        started = time.monotonic()
        process = await trio.lowlevel.open_process(
            [sys.executable, __file__, "--client", str(plan)],
            stdin=-1,
            stdout=-1,
        )
        assert process.stdin is not None and process.stdout is not None
        lines = _lines(process.stdout)
        ready = json.loads(await lines.__anext__())
        print(
            f"{ready['ready']} connections subscribed ({ready['failures']} failed) "
            f"in {time.monotonic() - started:.1f} s; hub has {hub.connections}",
            flush=True,
        )
        await trio.sleep(2)
        rss_after, objects_after = rss_kib(), tracked_objects()
        if args.trace_memory:
            print_memory_sites(snap_before, args.connections, args.trace_memory)
        await process.stdin.send_all(b"GO\n")
        await trio.sleep(0.5)
        cpu_start, client_cpu_start, wall_start = (
            cpu_seconds(),
            cpu_seconds(process.pid),
            time.monotonic(),
        )
        if args.profile:
            profile = cProfile.Profile()
            profile.enable()
        stalls = Stalls()
        batches = BatchWatch()
        trio.lowlevel.add_instrument(batches)
        gc.callbacks.append(stalls.on_gc)
        nursery.start_soon(sample_lag, stalls.lag, stop)
        seq = {t.video_id: t.seq for t in tasks}
        per_tick = max(1, round(args.rate / 100))
        index = 0
        deadline = trio.current_time() + args.seconds
        next_tick = trio.current_time()
        published = 0
        while trio.current_time() < deadline:
            for _ in range(per_tick):
                task = tasks[index % len(tasks)]
                index += 1
                seq[task.video_id] += 1
                event = dataclasses.replace(
                    task, seq=seq[task.video_id], status="PROCESSING", progress=50
                )
                hub.publish(TaskEvent(event, str(time.time_ns())))
                published += 1
            next_tick += 0.01
            await trio.sleep_until(next_tick)
        wall = time.monotonic() - wall_start
        gc.callbacks.remove(stalls.on_gc)
        trio.lowlevel.remove_instrument(batches)
        stalls_report = stalls.report()  # the publish phase only, not the teardown after it
        if args.profile:
            profile.disable()
            profile.dump_stats(args.profile)
        server_cpu = cpu_seconds() - cpu_start
        client_cpu = cpu_seconds(process.pid) - client_cpu_start
        await trio.sleep(1)
        await process.stdin.send_all(b"STOP\n")
        result = json.loads(await lines.__anext__())
        await process.wait()
        hub_stats = hub.statistics()
        n = ready["ready"]
        print(f"connections: {n}; events published: {published} in {wall:.1f} s")
        print(
            f"push latency (publish -> client receipt): p50 {result['p50']:.2f} ms, "
            f"p99 {result['p99']:.2f} ms, max {result['max']:.2f} ms "
            f"({result['received']} received; coalesced {hub_stats.coalesced}; "
            f"closed slow {hub_stats.dropped})"
        )
        print(
            f"server RSS: {rss_before / 1024:.0f} MiB before connections, "
            f"{rss_after / 1024:.0f} MiB with them: "
            f"{(rss_after - rss_before) / max(1, n):.1f} KiB per connection; "
            f"{(objects_after - objects_before) / max(1, n):.0f} objects tracked by the "
            "garbage collector per connection"
        )
        print(
            f"CPU during the publish phase: server {100 * server_cpu / wall:.0f} % of a core, "
            f"client {100 * client_cpu / wall:.0f} %; client RSS {result['rss_kib'] / 1024:.0f} MiB"
        )
        print(stalls_report)
        if batches.reports:
            print("server loop batches over 100 ms:\n  " + "\n  ".join(batches.reports))
        print(result["stalls"])
        stop.set()


async def _lines(stream: Any) -> Any:
    buffer = b""
    while True:
        while b"\n" not in buffer:
            chunk = await stream.receive_some(65536)
            if not chunk:
                return
            buffer += chunk
        line, buffer = buffer.split(b"\n", 1)
        yield line.decode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--rate", type=int, default=1000, help="task events per second")
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument(
        "--gc-freeze-seconds", type=float, default=0.5, help="the server's setting (0: off)"
    )
    parser.add_argument(
        "--trace-memory",
        type=int,
        default=0,
        metavar="N",
        help="trace allocations while connecting; print the N biggest sites per connection"
        " (tracing inflates the RSS figure)",
    )
    parser.add_argument("--profile", metavar="FILE", help="cProfile the publish phase to FILE")
    parser.add_argument("--client", help=argparse.SUPPRESS)
    args = parser.parse_args()
    raise_fd_limit()
    if args.client:
        trio.run(client_main, json.loads(Path(args.client).read_text()))
    else:
        import logging

        logging.basicConfig(level=logging.WARNING)
        trio.run(server_main, args)


if __name__ == "__main__":
    main()
