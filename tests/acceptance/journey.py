"""A finished task and its signed link: the starting point of the docs and ops tests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import trio

from tests.harness import LiveServer

FAST = {"simulator_time_scale": 240, "polling_speedup": 80}


@dataclass
class Finished:
    task: dict[str, Any]
    url: str  # the signed /files link of the video

    @property
    def video_id(self) -> str:
        return str(self.task["videoId"])

    @property
    def query(self) -> dict[str, str]:
        return {key: values[0] for key, values in parse_qs(urlsplit(self.url).query).items()}


async def finished_task(server: LiveServer, headers: dict[str, str], prompt: str) -> Finished:
    """Create a task, wait until it is COMPLETED with its copy stored, get its link."""
    created = await server.client.post("/api/video/tasks", json={"prompt": prompt}, headers=headers)
    assert created.status_code == 201, created.text
    video_id = created.json()["data"]["videoId"]
    with trio.fail_after(30):
        while True:
            response = await server.client.get(f"/api/video/tasks/{video_id}", headers=headers)
            assert response.status_code == 200, response.text
            task: dict[str, Any] = response.json()["data"]
            if task["status"] in ("FAILED", "CANCELLED"):
                raise AssertionError(task)
            if task["status"] == "COMPLETED" and task["contentStatus"] == "STORED":
                break
            await trio.sleep(0.05)
    content = await server.client.get(f"/api/video/tasks/{video_id}/content", headers=headers)
    assert content.status_code == 200, content.text
    return Finished(task, content.json()["data"]["url"])
