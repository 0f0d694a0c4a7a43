"""The event hub: actors publish task events; subscribers (WebSocket connections) get them.

Publishing never blocks an actor: each subscriber decides what to do with an event it
cannot take at once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .storage import Task

Listener = Callable[["TaskEvent"], None]


@dataclass(frozen=True, slots=True)
class TaskEvent:
    """A task right after a persisted change (its ``seq`` says which one)."""

    task: Task
    message: str | None = None


class Hub:
    """Fan-out of task events to listeners registered per task and per owner."""

    def __init__(self) -> None:
        self._listeners: list[Listener] = []

    def add_listener(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` for every event; returns a function that removes it."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def publish(self, event: TaskEvent) -> None:
        for listener in tuple(self._listeners):
            listener(event)
