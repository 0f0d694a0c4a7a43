"""The fake upstream's webhooks in virtual time: each job end once, late by the seeded delay,
or never (the seeded loss); forced ends too; and the simulator's command-line flags."""

from __future__ import annotations

import argparse

import pytest
import trio
import trio.testing

from sora_actors.upstream import SubmitRequest
from sora_actors.upstream.fake import DurationDistribution, MemoryProvider, SimulatorConfig
from sora_actors.upstream.fake.engine import Engine, JobState, WebhookConfig
from sora_actors.upstream.fake.simulator import add_simulator_arguments, simulator_config_from_args
from sora_actors.upstream.fake.webhooks import announce_ends

# Jobs of exactly 100 s from their creation.
FIXED = DurationDistribution(
    queue_min_s=0, queue_max_s=0, run_min_s=100, run_max_s=100, run_shape="uniform"
)


async def deliveries(
    engine: Engine, jobs: int, *, spacing: float = 1.0
) -> tuple[dict[str, float], list[str]]:
    """Create ``jobs`` jobs ``spacing`` s apart; (job id -> delivery time, ids in order)."""
    provider = MemoryProvider(engine=engine)
    got: dict[str, float] = {}
    ids: list[str] = []

    async def deliver(state: JobState) -> None:
        assert state.job.id not in got  # once each
        got[state.job.id] = trio.current_time()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(announce_ends, engine, deliver)
        for _ in range(jobs):
            ids.append((await provider.submit(SubmitRequest("hooked"))).id)
            await trio.sleep(spacing)
        await trio.sleep(200)
        nursery.cancel_scope.cancel()
    return got, ids


async def test_every_end_is_announced_once_after_its_delay(
    autojump_clock: trio.testing.MockClock,
) -> None:
    hooks = WebhookConfig("http://x/hooks", "whsec_", loss=0.0, delay_min_s=0.2, delay_max_s=0.8)
    engine = Engine(SimulatorConfig(seed=4, durations=FIXED, webhooks=hooks))
    t0 = trio.current_time()
    got, ids = await deliveries(engine, 20)
    assert list(got) == ids  # in the order they ended
    lateness = [got[job] - (t0 + 100 + n) for n, job in enumerate(ids)]
    assert all(0.2 <= late <= 0.8 for late in lateness), lateness
    assert len(set(lateness)) == 20  # drawn, not fixed
    # Seeded: the same run again gives the same delays.
    again = Engine(SimulatorConfig(seed=4, durations=FIXED, webhooks=hooks))
    t1 = trio.current_time()
    got2, ids2 = await deliveries(again, 20)
    assert [got2[job] - (t1 + 100 + n) for n, job in enumerate(ids2)] == pytest.approx(lateness)


async def test_lost_webhooks_and_forced_ends(autojump_clock: trio.testing.MockClock) -> None:
    hooks = WebhookConfig("http://x/hooks", "whsec_", loss=0.5)
    engine = Engine(SimulatorConfig(seed=9, durations=FIXED, webhooks=hooks))
    got, _ = await deliveries(engine, 40)
    assert engine.webhooks_lost == 40 - len(got) and 10 <= len(got) <= 30
    # A job forced to end early is announced then, not at its planned end.
    engine.set_webhooks(WebhookConfig("http://x/hooks", "whsec_", delay_min_s=0, delay_max_s=0))
    provider = MemoryProvider(engine=engine)
    seen: list[tuple[str, float]] = []

    async def deliver(state: JobState) -> None:
        seen.append((state.status, trio.current_time()))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(announce_ends, engine, deliver)
        job = await provider.submit(SubmitRequest("forced"))
        t0 = trio.current_time()
        await trio.sleep(30)
        provider.force_fail(job.id)
        await trio.sleep(200)
        nursery.cancel_scope.cancel()
    assert seen == [("failed", t0 + 30)]


def test_command_line_flags() -> None:
    parser = argparse.ArgumentParser()
    add_simulator_arguments(parser)
    plain = simulator_config_from_args(parser.parse_args([]))
    assert plain.webhooks is None
    hooked = simulator_config_from_args(
        parser.parse_args(
            [
                "--webhook-url",
                "http://127.0.0.1:3001/api/upstream/webhooks/default",
                "--webhook-secret",
                "whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQ=",
                "--webhook-loss",
                "0.1",
                "--webhook-delay-max",
                "2",
            ]
        )
    )
    assert hooked.webhooks == WebhookConfig(
        "http://127.0.0.1:3001/api/upstream/webhooks/default",
        "whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQ=",
        0.1,
        0.2,
        2.0,
    )
    with pytest.raises(SystemExit):
        simulator_config_from_args(parser.parse_args(["--webhook-url", "http://x"]))
    # A secret alone signs only the webhooks creates ask for (Replicate's "webhook" field).
    own = simulator_config_from_args(
        parser.parse_args(["--dialect", "replicate", "--webhook-secret", "whsec_c2VjcmV0"])
    )
    assert own.webhooks == WebhookConfig("", "whsec_c2VjcmV0", 0.0, 0.2, 0.8)
