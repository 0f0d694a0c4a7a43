"""Making an ADMIN in tests: a direct unit of work, until the CLI and the first-admin
settings (issue 14's admin-core part) exist on this branch."""

from __future__ import annotations

from typing import Any

from tests.harness import LiveServer


async def _promote(conn: Any, username: str) -> None:
    await conn.execute(
        "UPDATE users SET role = 'ADMIN' WHERE username_key = :name", {"name": username.lower()}
    )


async def admin_headers(server: LiveServer, username: str = "root") -> dict[str, str]:
    """Register ``username``, make it an ADMIN in the database, log in: its headers."""
    await server.register(username)
    await server.services.storage.database.run(_promote, username)
    return {"Authorization": f"Bearer {await server.login(username)}"}
