"""Helpers of the licence and quota tests: an admin, keys, plans, a virtual wall clock."""

from __future__ import annotations

from typing import Any

import pytest

from sora_actors.clock import wall_ms
from tests.harness import LiveServer

# Every field of a plan: none limits anything (the shipped plans' values are not used).
OPEN = {
    "max_running": 0,
    "tasks_per_day": 0,
    "tasks_per_30_days": 0,
    "max_duration_seconds": 0,
    "models": "*",
    "sizes": "*",
    "image_to_video": True,
}
# Plans whose limits tests can reach; FREE is the default for users without a licence.
TEST_PLANS: dict[str, dict[str, Any]] = {
    "FREE": {
        **OPEN,
        "max_duration_seconds": 8,
        "models": ["sora-2"],
        "sizes": ["720x1280"],
        "image_to_video": False,
    },
    "TRIAL": {**OPEN, "models": ["sora-2"], "max_duration_seconds": 10},
    "PRO": {**OPEN, "models": ["sora-2", "sora-2-pro"], "max_running": 5},
    "ENTERPRISE": OPEN,
}


def plans(**changes: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """TEST_PLANS with some fields of some plans changed."""
    return {name: {**plan, **changes.get(name, {})} for name, plan in TEST_PLANS.items()}


async def _promote(conn: Any, username: str) -> None:
    await conn.execute(
        "UPDATE users SET role = 'ADMIN' WHERE username_key = :name", {"name": username.lower()}
    )


async def promote(server: LiveServer, username: str) -> None:
    """Make a user ADMIN by a direct unit of work (the `users` command is another part's)."""
    await server.services.storage.database.run(_promote, username)


async def admin(server: LiveServer, username: str = "root") -> dict[str, str]:
    """An ADMIN's headers: registered, then promoted."""
    await server.register(username)
    await promote(server, username)
    return {"Authorization": f"Bearer {await server.login(username)}"}


async def generate(
    server: LiveServer, headers: dict[str, str], kind: str = "PRO", **extra: Any
) -> dict[str, Any]:
    response = await server.client.post(
        "/api/admin/license/generate", json={"type": kind, **extra}, headers=headers
    )
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


class VirtualWall:
    """Wall time that moves only when told (Unix ms), for the windows and expiries."""

    def __init__(self) -> None:
        self.now = wall_ms()

    def __call__(self) -> int:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += round(seconds * 1000)


def virtual_wall(monkeypatch: pytest.MonkeyPatch) -> VirtualWall:
    """Put a VirtualWall in place of the wall clock of task creation (created_at, the quota
    windows) and of licences (activation, expiry): the modules that read it for those."""
    clock = VirtualWall()
    for module in (
        "sora_actors.storage.tasks",
        "sora_actors.storage.licences",
        "sora_actors.http.admin_licences",
    ):
        monkeypatch.setattr(f"{module}.wall_ms", clock)
    return clock
