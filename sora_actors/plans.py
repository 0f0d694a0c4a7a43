"""Plans: which one a user is on, and what it lets a new task be.

A user's plan comes from their best licence that is neither revoked nor expired (its type
names the plan); without one, from ``default_plan()``: the settings' ``default_plan`` now,
a run-time override later (it is asked on every decision, so a change applies at once).
The check runs inside the unit of work that stores the task (`TaskService.accept` hands
`Plans.gate` to storage), after the user's licences are read there: a revocation that has
committed stops the very next create.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .settings import Plan
from .storage.licences import Licence, LicenceState
from .storage.quota import Quota

log = logging.getLogger("sora_actors.plans")

# When a user holds several usable licences, the plan of the highest type applies.
_RANK = {"TRIAL": 1, "PRO": 2, "ENTERPRISE": 3}


class PlanForbids(Exception):
    """The order asks for something the plan does not include."""

    def __init__(self, plan: str, field: str, value: Any, allowed: Any) -> None:
        super().__init__(f"the {plan} plan does not allow {field} {value}")
        self.plan = plan
        self.field = field
        self.value = value
        self.allowed = allowed


@dataclass(frozen=True, slots=True)
class Wish:
    """What a new task asks of the plan."""

    model: str
    size: str
    duration: int
    image: bool


def usable(licences: Sequence[Licence], now: int) -> Licence | None:
    """The licence that decides the plan: the highest type among the active ones, then the
    latest to expire (None: no usable licence)."""
    active = [licence for licence in licences if licence.state(now) == LicenceState.ACTIVE]
    if not active:
        return None
    return max(
        active,
        key=lambda licence: (_RANK.get(licence.type, 0), licence.expires_at or 2**62),
    )


class Plans:
    """The configured plans and the default one for users without a licence."""

    def __init__(self, plans: Mapping[str, Plan], default_plan: Callable[[], str]) -> None:
        self._plans = dict(plans)
        self._default = default_plan
        # Settings check their default names a plan; a run-time one might not: then this.
        self._fallback = default_plan()

    def named(self, name: str) -> Plan:
        return self._plans[name]

    def of(self, licences: Sequence[Licence], now: int) -> tuple[str, Plan, Licence | None]:
        """The user's plan name, the plan, and the licence it comes from."""
        licence = usable(licences, now)
        name = licence.type if licence is not None else self._default()
        if name not in self._plans:
            log.warning("default plan %r is not configured; using %r", name, self._fallback)
            name = self._fallback
        return name, self._plans[name], licence

    def gate(self, wish: Wish) -> Callable[[Sequence[Licence], int], Quota]:
        """The check for one new task: PlanForbids, or the counts the user's plan allows."""

        def check(licences: Sequence[Licence], now: int) -> Quota:
            name, plan, _ = self.of(licences, now)
            forbid(name, plan, wish)
            return Quota(plan.max_running, plan.tasks_per_day, plan.tasks_per_30_days)

        return check


def forbid(name: str, plan: Plan, wish: Wish) -> None:
    """PlanForbids naming the first thing ``wish`` asks that ``plan`` does not include."""
    if plan.models != "*" and wish.model not in plan.models:
        raise PlanForbids(name, "model", wish.model, list(plan.models))
    if plan.sizes != "*" and wish.size not in plan.sizes:
        raise PlanForbids(name, "size", wish.size, list(plan.sizes))
    if plan.max_duration_seconds and wish.duration > plan.max_duration_seconds:
        raise PlanForbids(name, "duration", wish.duration, plan.max_duration_seconds)
    if wish.image and not plan.image_to_video:
        raise PlanForbids(name, "image_to_video", True, False)
