"""A small Server-Sent Events reader for tests (what a browser's EventSource parses)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx2


@dataclass
class SseEvent:
    """One dispatched event, or a comment (``event == ":"``, ``data`` its text)."""

    event: str
    data: str
    id: str | None = None
    retry: int | None = None

    @property
    def json(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.data)
        return value


async def events(response: httpx2.Response) -> AsyncIterator[SseEvent]:
    """The events and comments of a streaming response, as they arrive."""
    event, data, event_id, retry = "message", [], None, None
    async for line in response.aiter_lines():
        if line == "":
            if data or retry is not None:
                yield SseEvent(event, "\n".join(data), event_id, retry)
            event, data, retry = "message", [], None
            continue
        if line.startswith(":"):
            yield SseEvent(":", line[1:].strip())
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            event = value
        elif name == "data":
            data.append(value)
        elif name == "id":
            event_id = value
        elif name == "retry":
            retry = int(value)
