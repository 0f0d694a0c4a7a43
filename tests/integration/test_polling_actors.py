"""The predictive policy and webhooks in a real actor, in virtual time (see test_actors).

One job: created at 0, no queue, progress linear in time, done at exactly 100 s; the upstream
suggests 5 s between polls.
"""

from __future__ import annotations

import itertools

import pytest
import trio

from sora_actors.http.wire import task_messages
from sora_actors.polling import PredictivePolicy, WebhookWatch
from sora_actors.task import DEFAULT_CHANNEL, ActorConfig, UpstreamHint
from sora_actors.upstream.fake import DurationDistribution, SimulatorConfig
from tests.integration.test_actors import Harness, running

LINEAR_100 = SimulatorConfig(
    seed=3,
    progress_shape="linear",
    durations=DurationDistribution(
        queue_min_s=0, queue_max_s=0, run_min_s=100, run_max_s=100, run_shape="uniform"
    ),
)


def poll_times(h: Harness, t0: float) -> list[float]:
    return [t - t0 for t, _ in h.provider.polls]


async def test_predictive_actor_polls_by_the_estimate(
    sqlite_url: str, autojump_clock: trio.testing.MockClock
) -> None:
    config = ActorConfig(policy=PredictivePolicy())
    async with running(sqlite_url, config=config, simulator=LINEAR_100) as h:
        t0 = trio.current_time()
        task = await h.create()
        done = await h.until_terminal(task.video_id)
        assert done.status == "COMPLETED"
        # 10 s, then half the estimated remaining time (never under the 5 s poll-after),
        # then 0.5 s past the predicted end: 6 polls where the seed schedule takes 14.
        assert poll_times(h, t0) == pytest.approx(
            [10.0, 52.619, 76.719, 88.597, 94.391, 100.417], abs=1e-3
        )
        gaps = [b - a for a, b in itertools.pairwise(poll_times(h, t0))]
        assert min(gaps) >= 5.0
        # taskProgress carries the estimate: seconds to the upstream end at that moment.
        progress_events = [
            (t - t0, payload)
            for t, event in h.events
            for kind, payload in task_messages(event.task, event.message)
            if kind == "taskProgress" and event.task.video_id == task.video_id
        ]
        estimates = {round(t, 3): p["estimatedTimeRemaining"] for t, p in progress_events}
        assert estimates[0.0] is None  # accepted: nothing to go by
        later = [(t, eta) for t, eta in estimates.items() if t >= 52]
        assert [t for t, _ in later][:4] == pytest.approx([52.619, 76.719, 88.597, 94.391])
        for t, eta in later[:4]:
            assert abs(eta - (100 - t)) <= 1.5, (t, eta)
        assert later[-1][1] == 0  # finished upstream: fetching


async def test_a_webhook_makes_the_actor_poll_once_to_confirm(
    sqlite_url: str, autojump_clock: trio.testing.MockClock
) -> None:
    watch = WebhookWatch(trust_s=3600)
    watch.received(DEFAULT_CHANNEL)  # the channel has been delivering webhooks
    config = ActorConfig(policy=PredictivePolicy(), webhooks=watch)
    async with running(sqlite_url, config=config, simulator=LINEAR_100) as h:
        t0 = trio.current_time()
        task = await h.create()
        await h.wait_until(lambda: any(e.task.phase == "POLLING" for _, e in h.events))
        # A lying webhook at 30 s: the actor checks (a poll), finds the job running, goes on.
        await trio.sleep_until(t0 + 30)
        assert h.supervisor.hint(task.video_id, UpstreamHint("video.completed"))
        # The truthful one comes 0.5 s after the end.
        await trio.sleep_until(t0 + 100.5)
        assert h.supervisor.hint(task.video_id, UpstreamHint("video.completed"))
        done = await h.until_terminal(task.video_id)
        assert done.status == "COMPLETED"
        # 30 s (the lie, checked: 30 % seen), next aimed 5 s past the predicted end (103.4);
        # the webhook at 100.5 brings it forward. No poll at 90 s: the lie's poll replaced it.
        assert poll_times(h, t0) == pytest.approx([30.0, 100.5], abs=1e-3)
        assert not h.supervisor.hint(task.video_id, UpstreamHint("video.completed"))


async def test_a_lost_webhook_is_caught_by_the_safety_net(
    sqlite_url: str, autojump_clock: trio.testing.MockClock
) -> None:
    watch = WebhookWatch(trust_s=3600)
    watch.received(DEFAULT_CHANNEL)
    config = ActorConfig(policy=PredictivePolicy(), webhooks=watch)
    async with running(sqlite_url, config=config, simulator=LINEAR_100) as h:
        t0 = trio.current_time()
        task = await h.create()
        done = await h.until_terminal(task.video_id)
        assert done.status == "COMPLETED"
        # 90 s (the safety net's first poll sees 90 %: ends at 99.45), then 5 s past that.
        assert poll_times(h, t0) == pytest.approx([90.0, 104.448], abs=1e-3)
