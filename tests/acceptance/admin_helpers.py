"""Making an ADMIN in tests: a direct unit of work (`licensing.promote`)."""

from __future__ import annotations

from tests.harness import LiveServer

from .licensing import promote


async def admin_headers(server: LiveServer, username: str = "root") -> dict[str, str]:
    """Register ``username``, make it an ADMIN in the database, log in: its headers."""
    await server.register(username)
    await promote(server, username)
    return {"Authorization": f"Bearer {await server.login(username)}"}
