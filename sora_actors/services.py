"""The long-lived parts of one running process, handed to the front end as one object."""

from __future__ import annotations

from dataclasses import dataclass, field

from . import __version__
from .clock import wall_ms
from .runtime import Runtime
from .settings import Settings
from .storage import Storage


@dataclass
class Services:
    settings: Settings
    storage: Storage
    runtime: Runtime
    version: str = __version__
    started_at_ms: int = field(default_factory=wall_ms)

    def uptime_seconds(self) -> float:
        return (wall_ms() - self.started_at_ms) / 1000
