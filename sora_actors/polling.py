"""Polling policies: how long an actor waits before asking the upstream again."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class PollingPolicy(Protocol):
    def first_delay(self) -> float:
        """Seconds from a successful submission to the first poll."""
        ...

    def next_delay(
        self, progress: int, *, failed: bool, hint: float | None, retry_after: float | None
    ) -> float:
        """Seconds until the next poll.

        ``hint`` is the upstream's ``openai-poll-after-ms`` (in seconds), ``retry_after`` its
        Retry-After on a refused poll; neither is ever undercut.
        """
        ...


@dataclass(frozen=True)
class SteppedSchedule:
    """The old backend's schedule: poll at once, then every 5 s below 30 %, 10 s below 70 %,
    15 s from there; 5 s after a failed poll."""

    fast: float = 5.0
    medium: float = 10.0
    slow: float = 15.0
    after_failure: float = 5.0
    medium_from: int = 30
    slow_from: int = 70

    def first_delay(self) -> float:
        return 0.0

    def next_delay(
        self, progress: int, *, failed: bool, hint: float | None, retry_after: float | None
    ) -> float:
        if failed:
            base = self.after_failure
        elif progress < self.medium_from:
            base = self.fast
        elif progress < self.slow_from:
            base = self.medium
        else:
            base = self.slow
        return max(base, hint or 0.0, retry_after or 0.0)


@dataclass(frozen=True)
class ScaledSchedule:
    """Another policy's delays divided by ``factor``: for demos against a sped-up simulator."""

    inner: PollingPolicy
    factor: float

    def first_delay(self) -> float:
        return self.inner.first_delay() / self.factor

    def next_delay(
        self, progress: int, *, failed: bool, hint: float | None, retry_after: float | None
    ) -> float:
        base = self.inner.next_delay(progress, failed=failed, hint=None, retry_after=None)
        return max(base / self.factor, hint or 0.0, retry_after or 0.0)
