"""Settings an operator changes while the service runs (`PUT /api/admin/config`), typed.

Stored as `system_config` rows (key -> JSON); each process keeps the current values in
memory (`SystemConfig.current()`, no database read on the hot path) and re-reads them:

- on PostgreSQL when another instance announces a change (LISTEN on `sora_config_events`,
  sent in the writing transaction, so within a second on every instance), after each
  reconnection of the listener, and every ``fallback_s`` in case a notification was lost;
- on SQLite every ``refresh_s`` (1 s): one SQLite file serves one process, so this only
  picks up a change made with the CLI or by hand while the server runs.

The instance that writes a change applies it at once.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, NoReturn

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr, ValidationError

from .refresh import keep_current
from .storage import Activity, Storage
from .storage.sysconfig import CHANNEL

log = logging.getLogger("sora_actors.config")

DEFAULT_PLAN = "FREE"
# Plan names when the settings list none: upper-case words such as TRIAL, PRO, ENTERPRISE.
PLAN_NAME = re.compile(r"^[A-Z][A-Z0-9_]{1,31}$")
MAINTENANCE_MESSAGE = "The service is under maintenance: new videos cannot be started right now."
MAX_MESSAGE = 500
MAX_ANNOUNCEMENT = 2000


@dataclass(frozen=True, slots=True)
class Maintenance:
    enabled: bool = False
    message: str = ""

    @property
    def notice(self) -> str:
        """What a refused client reads: the operator's message, or a plain default."""
        return self.message or MAINTENANCE_MESSAGE


@dataclass(frozen=True, slots=True)
class RuntimeConfig:
    """The current run-time settings (defaults for keys never stored)."""

    registration_open: bool = True
    maintenance: Maintenance = field(default_factory=Maintenance)
    default_plan: str = DEFAULT_PLAN
    announcement: str | None = None

    def wire(self) -> dict[str, Any]:
        """The API's camelCase view (also what is stored, key by key)."""
        return {
            "registrationOpen": self.registration_open,
            "maintenance": {
                "enabled": self.maintenance.enabled,
                "message": self.maintenance.message,
            },
            "defaultPlan": self.default_plan,
            "announcement": self.announcement,
        }


class MaintenanceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: StrictBool
    message: StrictStr = Field(default="", max_length=MAX_MESSAGE)


class ConfigPatch(BaseModel):
    """What `PUT /api/admin/config` accepts: any subset of the keys, each of its own type."""

    model_config = ConfigDict(extra="forbid")

    registrationOpen: StrictBool | None = None
    maintenance: MaintenanceIn | None = None
    defaultPlan: StrictStr | None = Field(default=None, min_length=1, max_length=32)
    announcement: StrictStr | None = Field(default=None, max_length=MAX_ANNOUNCEMENT)


class ConfigInvalid(Exception):
    """A patch with unknown keys or wrong values; ``problems`` names every one of them."""

    def __init__(self, problems: list[dict[str, str]]) -> None:
        super().__init__(f"{problems[0]['field']}: {problems[0]['message']}")
        self.problems = problems


def validate(raw: Any, plans: Iterable[str] | None) -> dict[str, Any]:
    """The stored form (key -> JSON value) of a patch; ConfigInvalid naming every bad field.

    ``plans``: the plan names the settings define (None: any upper-case plan-like name).
    ``announcement: null`` (or an empty text) removes the announcement.
    """
    if not isinstance(raw, dict) or not raw:
        raise ConfigInvalid(
            [{"field": "body", "message": "must be a JSON object with a key to set"}]
        )
    problems: list[dict[str, str]] = []
    try:
        patch = ConfigPatch.model_validate(raw)
    except ValidationError as error:
        for item in error.errors(include_url=False, include_input=False):
            where = ".".join(str(part) for part in item["loc"]) or "body"
            message = "unknown setting" if item["type"] == "extra_forbidden" else item["msg"]
            problems.append({"field": where, "message": message})
        patch = None
    changes: dict[str, Any] = {}
    if patch is not None:
        for key in raw:
            value = getattr(patch, key)
            if value is None and key != "announcement":
                problems.append({"field": key, "message": "must not be null"})
            elif isinstance(value, BaseModel):
                changes[key] = value.model_dump()
            else:
                changes[key] = value
    plan = changes.get("defaultPlan")
    if isinstance(plan, str):
        known = sorted(plans) if plans is not None else None
        if known is not None and plan not in known:
            problems.append(
                {"field": "defaultPlan", "message": f"must be one of {', '.join(known)}"}
            )
        elif known is None and not PLAN_NAME.fullmatch(plan):
            problems.append(
                {
                    "field": "defaultPlan",
                    "message": "must be a plan name such as FREE, TRIAL or PRO",
                }
            )
    if "announcement" in changes and not (changes["announcement"] or "").strip():
        changes["announcement"] = None
    if problems:
        raise ConfigInvalid(problems)
    return changes


def from_stored(values: dict[str, Any], default_plan: str = DEFAULT_PLAN) -> RuntimeConfig:
    """The typed settings from stored rows; a value of the wrong type counts as unset.

    ``default_plan``: the settings file's plan for unlicensed users, until one is stored.
    """
    config = RuntimeConfig(default_plan=default_plan)
    for key, value in values.items():
        try:
            checked = ConfigPatch.model_validate({key: value})
        except ValidationError:
            if key in ConfigPatch.model_fields:
                log.warning("system_config %r holds an invalid value; using the default", key)
            continue
        if key == "registrationOpen" and checked.registrationOpen is not None:
            config = dataclasses.replace(config, registration_open=checked.registrationOpen)
        elif key == "maintenance" and checked.maintenance is not None:
            state = Maintenance(checked.maintenance.enabled, checked.maintenance.message)
            config = dataclasses.replace(config, maintenance=state)
        elif key == "defaultPlan" and checked.defaultPlan is not None:
            config = dataclasses.replace(config, default_plan=checked.defaultPlan)
        elif key == "announcement":
            config = dataclasses.replace(config, announcement=checked.announcement or None)
    return config


class SystemConfig:
    """This process's copy of the run-time settings, kept current."""

    def __init__(
        self,
        storage: Storage,
        *,
        refresh_s: float = 1.0,
        fallback_s: float = 30.0,
        default_plan: str = DEFAULT_PLAN,
    ) -> None:
        self._storage = storage
        self._default_plan = default_plan
        self._config = RuntimeConfig(default_plan=default_plan)
        self._refresh_s = refresh_s
        self._fallback_s = fallback_s

    def current(self) -> RuntimeConfig:
        """The settings now (no I/O): what every request checks."""
        return self._config

    async def load(self) -> RuntimeConfig:
        """Re-read the stored rows into this process's copy."""
        self._config = from_stored(await self._storage.config.read(), self._default_plan)
        return self._config

    async def update(self, changes: dict[str, Any], activity: Activity) -> RuntimeConfig:
        """Store validated ``changes`` (from `validate`), log them with ``activity`` (old and
        new values), tell the other instances, and apply them here at once."""
        self._config = from_stored(
            await self._storage.config.write(changes, activity), self._default_plan
        )
        return self._config

    async def run(self) -> NoReturn:
        """Keep the copy current until cancelled (see the module's docstring)."""
        await keep_current(
            self._storage,
            self.load,
            channel=CHANNEL,
            what="run-time config",
            refresh_s=self._refresh_s,
            fallback_s=self._fallback_s,
        )
