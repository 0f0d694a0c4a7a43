"""Polling policies: exact next-poll times for given histories (times are plain seconds)."""

from __future__ import annotations

import pytest

from sora_actors.polling import (
    PredictivePolicy,
    PredictiveRun,
    ScaledSchedule,
    SteppedSchedule,
    WebhookWatch,
)
from sora_actors.runtime import polling_policy
from sora_actors.settings import load


def test_predictive_follows_a_linear_job_to_its_end() -> None:
    # Progress + 0.5 = 0.5 % per second from the submission at 0: the job ends at 200.
    schedule = PredictivePolicy().schedule(0.0, submitted=True)
    assert schedule.first_delay() == 10.0
    history = [
        # (now, progress seen) -> the next delay
        ((9.0, 4), 60.0),  # rate from the submission: 4.5 / 9 = 0.5; 191 s left: capped
        ((69.0, 34), 60.0),  # (34 - 4) / 60 = 0.5; 131 s left: capped
        ((129.0, 64), 35.5),  # 71 s left: wait half of it
        ((165.0, 82), 17.5),  # 35 s left
        ((183.0, 91), 8.5),  # 17 s left
        ((191.0, 95), 9.5),  # 9 s left: aim 0.5 s past the predicted end (200)
    ]
    for (now, progress), delay in history:
        got = schedule.next_delay(now, progress, failed=False, hint=None, retry_after=None)
        assert got == delay, (now, progress)
    assert schedule.remaining(191.0) == 9.0
    assert schedule.remaining(195.0) == 5.0


def test_predictive_never_undercuts_the_upstream() -> None:
    schedule = PredictivePolicy().schedule(0.0, submitted=True)
    for now, progress in ((9.0, 4), (69.0, 34), (129.0, 64), (165.0, 82), (183.0, 91)):
        schedule.next_delay(now, progress, failed=False, hint=None, retry_after=None)
    # 9.5 s by the estimate, but openai-poll-after-ms says 12 s.
    assert schedule.next_delay(191.0, 95, failed=False, hint=12.0, retry_after=None) == 12.0
    # A webhook at 195 is confirmed only once the upstream lets us poll again (203).
    assert schedule.after_webhook(195.0) == 8.0
    assert schedule.after_webhook(204.0) == 0.0
    # A refused poll: Retry-After wins over the 5 s after a failure, and the estimate stays.
    assert schedule.next_delay(203.0, 95, failed=True, hint=None, retry_after=30.0) == 30.0
    assert schedule.next_delay(233.0, 95, failed=True, hint=None, retry_after=None) == 5.0
    assert schedule.remaining(191.0) == 9.0


def test_predictive_probes_until_progress_shows() -> None:
    schedule = PredictivePolicy().schedule(0.0, submitted=True)
    assert schedule.next_delay(10.0, 0, failed=False, hint=None, retry_after=None) == 10.0
    assert schedule.next_delay(20.0, 0, failed=False, hint=None, retry_after=None) == 10.0
    assert schedule.remaining(20.0) is None
    # First progress at 25; the last 0 % was at 20: 12.5 % in 5 s, 35 s left.
    assert schedule.next_delay(25.0, 12, failed=False, hint=None, retry_after=None) == 17.5
    assert schedule.remaining(25.0) == 35.0


def test_a_stalled_job_slows_its_own_estimate() -> None:
    schedule = PredictivePolicy().schedule(0.0, submitted=True)
    # 19 % at 10 s: 1.95 %/s from the submission, 41.28 s left.
    assert schedule.next_delay(
        10.0, 19, failed=False, hint=None, retry_after=None
    ) == pytest.approx(80.5 / 1.95 / 2)
    # Still 19 % at 39 s: no rate from progress alone, so 19.5 % in 39 s = 0.5 %/s.
    assert schedule.next_delay(39.0, 19, failed=False, hint=None, retry_after=None) == 60.0
    assert schedule.remaining(39.0) == 161.0


def test_a_resumed_task_has_no_origin_and_waits_for_two_readings() -> None:
    schedule = PredictivePolicy().schedule(500.0)  # restarted: when did the job start?
    assert schedule.next_delay(500.0, 40, failed=False, hint=None, retry_after=None) == 10.0
    assert schedule.remaining(500.0) is None
    assert schedule.next_delay(510.0, 45, failed=False, hint=None, retry_after=None) == 54.5
    assert schedule.remaining(510.0) == 109.0


def test_predictive_with_webhooks_is_a_sparse_safety_net() -> None:
    live = True
    schedule = PredictivePolicy().schedule(0.0, submitted=True, webhooks=lambda: live)
    assert schedule.first_delay() == 90.0
    # 44 % at 89 s: 0.5 %/s, 111 s left; the next poll waits for the webhook 5 s longer.
    assert schedule.next_delay(89.0, 44, failed=False, hint=5.0, retry_after=None) == 116.0
    live = False  # the channel went quiet: back to the plain estimate
    assert schedule.next_delay(99.0, 49, failed=False, hint=5.0, retry_after=None) == 50.5


def test_seed_schedule_and_its_webhook_mode() -> None:
    live = False
    schedule = SteppedSchedule().schedule(0.0, submitted=True, webhooks=lambda: live)
    assert schedule.first_delay() == 0.0
    delays = [
        schedule.next_delay(0.0, p, failed=False, hint=None, retry_after=None)
        for p in (0, 29, 30, 69, 70, 99)
    ]
    assert delays == [5.0, 5.0, 10.0, 10.0, 15.0, 15.0]
    assert schedule.next_delay(0.0, 50, failed=True, hint=None, retry_after=None) == 5.0
    assert schedule.next_delay(0.0, 50, failed=False, hint=7.5, retry_after=None) == 10.0
    assert schedule.next_delay(0.0, 80, failed=False, hint=20.0, retry_after=None) == 20.0
    assert schedule.after_webhook(12.0) == 8.0
    assert schedule.remaining(0.0) is None
    live = True
    assert schedule.first_delay() == 60.0
    assert schedule.next_delay(0.0, 10, failed=False, hint=None, retry_after=None) == 60.0


def test_scaled_policies_divide_every_fixed_duration() -> None:
    scaled = ScaledSchedule(PredictivePolicy(), 10).schedule(0.0, submitted=True)
    assert scaled.first_delay() == 1.0
    assert isinstance(scaled, PredictiveRun)
    # Rates need no scaling: 0.5 %/s leaves 191 s; the 60 s cap became 6 s.
    assert scaled.next_delay(9.0, 4, failed=False, hint=None, retry_after=None) == 6.0
    seed = ScaledSchedule(SteppedSchedule(), 5).schedule(0.0)
    assert seed.next_delay(0.0, 80, failed=False, hint=None, retry_after=None) == 3.0


def test_webhook_watch_trusts_a_channel_for_a_while() -> None:
    now = [0.0]
    watch = WebhookWatch(trust_s=600.0, clock=lambda: now[0])
    live = watch.signal("default")
    assert not live()
    watch.received("default")
    now[0] = 600.0
    assert live() and not watch.live("other")
    now[0] = 600.5
    assert not live()


def test_the_setting_chooses_the_policy() -> None:
    assert polling_policy(load(environ={})) == PredictivePolicy()
    seed = load(environ={"SORA_POLLING_POLICY": "seed", "SORA_POLLING_SPEEDUP": "5"})
    assert polling_policy(seed) == SteppedSchedule(
        fast=1, medium=2, slow=3, after_failure=1, webhook_s=12
    )
