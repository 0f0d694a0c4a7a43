"""Polling policies: how long an actor waits before asking the upstream again.

A policy (`PollingPolicy`) makes one `Schedule` per task actor; the schedule remembers what
that task's polls saw and answers "how long until the next poll". Two policies:

- `SteppedSchedule`, the old backend's ("seed") schedule: at once, then 5/10/15 s by progress;
- `PredictivePolicy`: estimates when the upstream job ends from the progress seen so far and
  polls sparsely early, densely around the predicted end (half the polls and half the lag of
  the seed schedule on the bench, `bench/polling.py`).

Both never poll sooner than the upstream's ``openai-poll-after-ms`` or ``Retry-After``, and
both become a sparse safety net while the task's channel delivers webhooks (`WebhookWatch`):
a webhook then makes the actor poll once to confirm (`Schedule.after_webhook`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import trio

# Whether the task's channel delivers webhooks now (see `WebhookWatch.live`).
WebhooksLive = Callable[[], bool]


def _never() -> bool:
    return False


class Schedule(Protocol):
    """One task's polling schedule. Times are Trio seconds (virtual in tests)."""

    def first_delay(self) -> float:
        """Seconds from a successful submission to the first poll."""
        ...

    def next_delay(
        self,
        now: float,
        progress: int,
        *,
        failed: bool,
        hint: float | None,
        retry_after: float | None,
    ) -> float:
        """A poll just answered (``progress``, or ``failed``): seconds until the next one.

        ``hint`` is the upstream's ``openai-poll-after-ms`` (in seconds), ``retry_after`` its
        Retry-After on a refused poll; neither is ever undercut.
        """
        ...

    def after_webhook(self, now: float) -> float:
        """A webhook said the job ended: seconds until the poll that confirms it (at once,
        unless the upstream asked us to wait longer after the last poll)."""
        ...

    def remaining(self, now: float) -> float | None:
        """Estimated seconds until the upstream job ends; None when there is no estimate."""
        ...


class PollingPolicy(Protocol):
    def schedule(
        self, now: float, *, submitted: bool = False, webhooks: WebhooksLive = _never
    ) -> Schedule:
        """A schedule for one task. ``submitted``: the job was created at ``now`` (its
        progress was 0 then), which dates the start of its progress."""
        ...


class _Floor:
    """The earliest time the upstream lets us poll again (poll-after or Retry-After)."""

    floor_at = 0.0

    def _respect(self, now: float, delay: float, hint: float | None, retry: float | None) -> float:
        floor = max(hint or 0.0, retry or 0.0)
        self.floor_at = now + floor
        return max(delay, floor)

    def after_webhook(self, now: float) -> float:
        return max(0.0, self.floor_at - now)


@dataclass(frozen=True)
class SteppedSchedule:
    """The old backend's schedule: poll at once, then every 5 s below 30 %, 10 s below 70 %,
    15 s from there; 5 s after a failed poll. While webhooks arrive, ``webhook_s`` between
    polls instead (the safety net)."""

    fast: float = 5.0
    medium: float = 10.0
    slow: float = 15.0
    after_failure: float = 5.0
    medium_from: int = 30
    slow_from: int = 70
    webhook_s: float = 60.0

    def schedule(
        self, now: float, *, submitted: bool = False, webhooks: WebhooksLive = _never
    ) -> Schedule:
        return _SteppedRun(self, webhooks)

    def scaled(self, factor: float) -> SteppedSchedule:
        return dataclasses.replace(
            self,
            fast=self.fast / factor,
            medium=self.medium / factor,
            slow=self.slow / factor,
            after_failure=self.after_failure / factor,
            webhook_s=self.webhook_s / factor,
        )


class _SteppedRun(_Floor):
    def __init__(self, policy: SteppedSchedule, webhooks: WebhooksLive) -> None:
        self._policy = policy
        self._webhooks = webhooks

    def first_delay(self) -> float:
        return self._policy.webhook_s if self._webhooks() else 0.0

    def next_delay(
        self,
        now: float,
        progress: int,
        *,
        failed: bool,
        hint: float | None,
        retry_after: float | None,
    ) -> float:
        p = self._policy
        if failed:
            base = p.after_failure
        elif self._webhooks():
            base = p.webhook_s
        elif progress < p.medium_from:
            base = p.fast
        elif progress < p.slow_from:
            base = p.medium
        else:
            base = p.slow
        return self._respect(now, base, hint, retry_after)

    def remaining(self, now: float) -> float | None:
        return None


@dataclass(frozen=True)
class PredictivePolicy:
    """Poll by the predicted end of the job.

    The rate comes from the progress seen so far: from the first poll that showed progress
    to the latest one (so a job that stalls slows its own estimate down), or, with one such
    poll only, from the last poll that still showed 0 % (the submission counts as one).
    Progress is an integer, so a poll that shows ``p`` % is read as ``p + 0.5``; the job
    ends at 100 %.

    While the estimated remaining time is long, the next poll waits ``fraction`` of it (at
    most ``max_s``): few polls while an estimate would still move. Once it is at most
    ``aim_s``, the next poll is aimed ``margin_s`` past the predicted end. Without an
    estimate (no progress yet) polls come every ``probe_s``.

    While webhooks arrive, polling is the safety net for a lost one: every ``webhook_s``
    until there is an estimate, then ``webhook_grace_s`` past the predicted end.
    """

    first_s: float = 10.0
    probe_s: float = 10.0
    fraction: float = 0.5
    max_s: float = 60.0
    min_s: float = 1.0
    aim_s: float = 10.0
    margin_s: float = 0.5
    after_failure_s: float = 5.0
    webhook_s: float = 90.0
    webhook_grace_s: float = 5.0

    def schedule(
        self, now: float, *, submitted: bool = False, webhooks: WebhooksLive = _never
    ) -> Schedule:
        return PredictiveRun(self, now if submitted else None, webhooks)

    def scaled(self, factor: float) -> PredictivePolicy:
        """Every fixed duration divided by ``factor`` (a sped-up simulator); the estimate
        itself follows the observed rate and needs no scaling."""
        return dataclasses.replace(
            self,
            first_s=self.first_s / factor,
            probe_s=self.probe_s / factor,
            max_s=self.max_s / factor,
            min_s=self.min_s / factor,
            aim_s=self.aim_s / factor,
            margin_s=self.margin_s / factor,
            after_failure_s=self.after_failure_s / factor,
            webhook_s=self.webhook_s / factor,
            webhook_grace_s=self.webhook_grace_s / factor,
        )


class PredictiveRun(_Floor):
    """`PredictivePolicy`'s schedule for one task: the observations it estimates from."""

    def __init__(
        self, policy: PredictivePolicy, submitted_at: float | None, webhooks: WebhooksLive
    ) -> None:
        self._policy = policy
        self._webhooks = webhooks
        self._zero_at = submitted_at  # the last poll (or the submission) that showed 0 %
        self._first: tuple[float, int] | None = None  # the first poll that showed progress
        self._last: tuple[float, int] | None = None  # the latest poll

    def first_delay(self) -> float:
        return self._policy.webhook_s if self._webhooks() else self._policy.first_s

    def observe(self, now: float, progress: int) -> None:
        self._last = (now, progress)
        if progress <= 0:
            self._zero_at = now
        elif self._first is None:
            self._first = (now, progress)

    def rate(self) -> float | None:
        """Estimated progress (percent) per second; None while there is nothing to go by."""
        first, last = self._first, self._last
        if first is None or last is None:
            return None
        if last[1] > first[1]:
            return (last[1] - first[1]) / (last[0] - first[0])
        if self._zero_at is not None and first[0] > self._zero_at:
            return (last[1] + 0.5) / (last[0] - self._zero_at)
        return None

    def remaining(self, now: float) -> float | None:
        rate, last = self.rate(), self._last
        if rate is None or last is None or rate <= 0:
            return None
        return max(0.0, (100.0 - (last[1] + 0.5)) / rate - (now - last[0]))

    def next_delay(
        self,
        now: float,
        progress: int,
        *,
        failed: bool,
        hint: float | None,
        retry_after: float | None,
    ) -> float:
        p = self._policy
        if failed:
            return self._respect(now, p.after_failure_s, hint, retry_after)
        self.observe(now, progress)
        left = self.remaining(now)
        if self._webhooks():
            delay = p.webhook_s if left is None else left + p.webhook_grace_s
        elif left is None:
            delay = p.probe_s
        elif left <= p.aim_s:
            delay = left + p.margin_s
        else:
            delay = min(p.max_s, p.fraction * left)
        return self._respect(now, max(p.min_s, delay), hint, retry_after)


@dataclass(frozen=True)
class ScaledSchedule:
    """Another policy's durations divided by ``factor``: for demos against a sped-up
    simulator."""

    inner: SteppedSchedule | PredictivePolicy
    factor: float

    def schedule(
        self, now: float, *, submitted: bool = False, webhooks: WebhooksLive = _never
    ) -> Schedule:
        return self.inner.scaled(self.factor).schedule(now, submitted=submitted, webhooks=webhooks)


class WebhookWatch:
    """Which channels deliver webhooks now: one verified within ``trust_s`` makes polling
    of that channel's tasks the sparse safety net; silence for longer brings it back."""

    def __init__(self, trust_s: float = 600.0, clock: Callable[[], float] | None = None) -> None:
        self._trust_s = trust_s
        self._clock = clock or trio.current_time
        self._last: dict[str, float] = {}

    def received(self, channel: str) -> None:
        self._last[channel] = self._clock()

    def live(self, channel: str) -> bool:
        last = self._last.get(channel)
        return last is not None and self._clock() - last <= self._trust_s

    def signal(self, channel: str) -> WebhooksLive:
        return lambda: self.live(channel)
