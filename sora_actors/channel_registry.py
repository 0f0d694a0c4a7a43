"""Upstream channels admins manage at run time (`/api/admin/channels`), applied live.

The effective channels are the settings' (``[[channels]]``, or the ``upstream_*`` settings as
channel ``default``) overlaid by the stored `channels` rows: a stored channel replaces the
file's of the same name or adds one; a stored tombstone (``DELETE`` of any channel, the
file's too) removes the name until it is created again. Every instance re-reads the rows
within a second (`refresh.keep_current`: NOTIFY on ``sora_channel_events`` on PostgreSQL, a
1 s re-read on SQLite) and applies the difference to its `ChannelSet`:

- a new or changed channel gets a new `Channel` (its adapters opened in the runtime's exit
  stack); tasks look their channel up by name at every call, so the tasks already on a
  replaced channel go on with the new URL and keys from their next call;
- a deleted channel leaves routing (no new task goes there) but is kept, with its open
  adapters, for the tasks already on it until they end; its tombstone keeps its last
  settings, so after a restart (or on an instance that takes such a task over) it is opened
  again out of routing for them;
- an unchanged channel keeps its object, its circuit and its statistics.

Replaced channels' old adapters stay open until the process stops (in-flight calls may
still hold them); a channel is a handful of HTTP clients, and admins change channels rarely.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable, Iterable
from contextlib import AsyncExitStack
from typing import Any, NoReturn

import trio
from pydantic import ValidationError

from .channels import Channel, ChannelSet
from .refresh import keep_current
from .settings import ChannelSettings
from .storage import Activity, Storage
from .storage.channel_rows import CHANNEL, ChannelRow

log = logging.getLogger("sora_actors.channels")

# The API's camelCase names of ChannelSettings' fields.
WIRE: dict[str, str] = {
    "name": "name",
    "dialect": "dialect",
    "baseUrl": "base_url",
    "apiKeys": "api_keys",
    "authStyle": "auth_style",
    "modelMap": "model_map",
    "models": "models",
    "sizes": "sizes",
    "durations": "durations",
    "priority": "priority",
    "weight": "weight",
    "maxConcurrentJobs": "max_concurrent_jobs",
    "maxRequestsPerSecond": "max_requests_per_second",
    "enabled": "enabled",
    "webhookSecret": "webhook_secret",
}
_FIELD = {field: wire for wire, field in WIRE.items()}

Opener = Callable[[ChannelSettings, AsyncExitStack], Awaitable[Channel]]


class ChannelInvalid(Exception):
    """A channel body with unknown fields or wrong values; ``problems`` names every one."""

    def __init__(self, problems: list[dict[str, str]]) -> None:
        super().__init__(f"{problems[0]['field']}: {problems[0]['message']}")
        self.problems = problems


class ChannelConflict(Exception):
    """The change contradicts the current channels (``code``: the API's error code)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def parse(raw: Any, current: ChannelSettings | None = None) -> ChannelSettings:
    """A channel from an API body (camelCase); with ``current``, a partial update of it
    (omitted fields, the keys and webhook secret among them, stay as they are; the name
    cannot change). ChannelInvalid names every bad field, never a key's value."""
    if not isinstance(raw, dict) or not raw:
        raise ChannelInvalid([{"field": "body", "message": "must be a JSON object of fields"}])
    problems = [{"field": key, "message": "unknown field"} for key in raw if key not in WIRE]
    fields = {WIRE[key]: value for key, value in raw.items() if key in WIRE}
    if current is not None:
        if "name" in raw and raw["name"] != current.name:
            problems.append({"field": "name", "message": "cannot be changed"})
        fields = {**current.model_dump(), **fields, "name": current.name}
    try:
        spec = ChannelSettings.model_validate(fields)
    except ValidationError as error:
        for item in error.errors(include_url=False, include_input=False, include_context=False):
            loc = item["loc"]
            where = ".".join([_FIELD.get(str(loc[0]), str(loc[0])), *map(str, loc[1:])])
            message = item["msg"].removeprefix("Value error, ")
            problems.append({"field": where or "body", "message": message})
        raise ChannelInvalid(problems) from None
    if problems:
        raise ChannelInvalid(problems)
    return spec


def effective(
    file: Iterable[ChannelSettings], rows: Iterable[ChannelRow]
) -> tuple[dict[str, ChannelSettings], dict[str, ChannelSettings]]:
    """The settings' channels overlaid by the stored ones (see the module doc); and the
    deleted ones, as they were last, for the tasks still on them."""
    specs = {spec.name: spec for spec in file}
    gone: dict[str, ChannelSettings] = {}
    for row in rows:
        try:
            spec = ChannelSettings.model_validate(row.spec)
        except ValidationError as error:  # a hand edit: the name is left as it was
            log.warning("stored channel %r is invalid, ignored: %s", row.name, error)
            continue
        if row.deleted:
            specs.pop(row.name, None)
            gone[row.name] = spec
        else:
            specs[row.name] = spec
    return specs, gone


class ChannelRegistry:
    """This process's channels as configured, kept current and applied to its ChannelSet."""

    def __init__(
        self,
        storage: Storage,
        file: tuple[ChannelSettings, ...],
        opener: Opener,
        *,
        refresh_s: float = 1.0,
    ) -> None:
        self._storage = storage
        self._file = file
        self._open = opener
        self._refresh_s = refresh_s
        self._lock = trio.Lock()
        self._stack: AsyncExitStack | None = None
        self.specs: dict[str, ChannelSettings] = {}
        # The webhook inbox reads these at each delivery.
        self.secrets: dict[str, str] = {}
        self.dialects: dict[str, str] = {}
        self.channels: ChannelSet | None = None

    async def open(self, stack: AsyncExitStack) -> ChannelSet:
        """Open the effective channels (adapters closed with ``stack``): the ChannelSet."""
        self._stack = stack
        specs, gone = effective(self._file, await self._storage.channels.read())
        if not specs:
            log.error("the stored channels remove every channel; using the settings' ones")
            specs = {spec.name: spec for spec in self._file}
        opened = [await self._open(spec, stack) for spec in specs.values()]
        self.channels = ChannelSet(opened)
        await self._keep(gone)
        self._set(specs)
        return self.channels

    async def _keep(self, gone: dict[str, ChannelSettings]) -> None:
        """Deleted channels this process has not got: open them out of routing, for tasks
        still on them (after a restart, or taken over from another instance)."""
        assert self.channels is not None and self._stack is not None
        for name, spec in gone.items():
            if name not in self.channels.channels and name not in self.channels.retired:
                self.channels.keep(await self._open(spec, self._stack))

    def _set(self, specs: dict[str, ChannelSettings]) -> None:
        self.specs = specs
        self.secrets.clear()
        self.secrets.update({name: spec.webhook_secret for name, spec in specs.items()})
        self.dialects.clear()
        self.dialects.update({name: spec.dialect for name, spec in specs.items()})

    async def load(self) -> None:
        """Re-read the stored channels and apply what changed."""
        assert self.channels is not None and self._stack is not None, "open() first"
        async with self._lock:  # one re-read and apply at a time, in order
            specs, gone = effective(self._file, await self._storage.channels.read())
            if not specs:
                log.error("the stored channels remove every channel; keeping the current ones")
                return
            for name, spec in specs.items():
                if self.specs.get(name) != spec:
                    self.channels.put(await self._open(spec, self._stack))
                    log.info("channel %s %s", name, "changed" if name in self.specs else "added")
            for name in self.specs.keys() - specs.keys():
                self.channels.retire(name)
                log.info("channel %s removed (its running tasks keep it)", name)
            self._set(specs)
            await self._keep(gone)

    async def create(self, spec: ChannelSettings, activity: Activity) -> ChannelSettings:
        if spec.name in self.specs:
            raise ChannelConflict("CHANNEL_EXISTS", f"A channel named {spec.name!r} exists.")
        await self._store(spec.name, spec, activity)
        return self.specs[spec.name]

    async def update(self, name: str, raw: Any, activity: Activity) -> ChannelSettings:
        current = self._current(name)
        spec = parse(raw, current)
        changed = sorted(WIRE[f] for f in WIRE.values() if getattr(spec, f) != getattr(current, f))
        activity = dataclasses.replace(activity, details={"channel": name, "changed": changed})
        await self._store(name, spec, activity)
        return self.specs[name]

    async def delete(self, name: str, activity: Activity) -> None:
        self._current(name)
        if len(self.specs) == 1:
            raise ChannelConflict("CHANNEL_LAST", "The last channel cannot be deleted.")
        await self._store(name, None, activity)

    def _current(self, name: str) -> ChannelSettings:
        spec = self.specs.get(name)
        if spec is None:
            raise KeyError(name)
        return spec

    async def _store(self, name: str, spec: ChannelSettings | None, activity: Activity) -> None:
        """Write (and log, and announce), then apply here at once."""
        last = spec or self.specs[name]
        await self._storage.channels.write(
            name, last.model_dump(mode="json"), activity, deleted=spec is None
        )
        await self.load()

    async def run(self) -> NoReturn:
        """Keep the channels current until cancelled (see the module doc)."""
        await keep_current(
            self._storage, self.load, channel=CHANNEL, what="channels", refresh_s=self._refresh_s
        )
