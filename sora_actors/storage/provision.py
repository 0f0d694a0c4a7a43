"""Creating and dropping whole PostgreSQL databases: for tests, benchmarks and first installs."""

from __future__ import annotations

import re
from typing import Any

import asyncpg

from .bridge import open_bridge

_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def _driver_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


def with_database(url: str, name: str) -> str:
    """The same server URL, pointing at database ``name``."""
    head, _, tail = url.rpartition("/")
    query = tail.split("?", 1)[1] if "?" in tail else ""
    return f"{head}/{name}" + (f"?{query}" if query else "")


async def _admin(url: str, statement: str) -> None:
    conn: Any = await asyncpg.connect(_driver_dsn(url), timeout=10)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


async def create_database(server_url: str, name: str) -> str:
    """Create database ``name`` on the server of ``server_url``; return its URL."""
    if not _NAME.fullmatch(name):
        raise ValueError(f"not a safe database name: {name!r}")
    async with open_bridge() as bridge:
        await bridge.run(_admin, server_url, f'CREATE DATABASE "{name}"')
    return with_database(server_url, name)


async def drop_database(server_url: str, name: str) -> None:
    if not _NAME.fullmatch(name):
        raise ValueError(f"not a safe database name: {name!r}")
    async with open_bridge() as bridge:
        await bridge.run(_admin, server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def execute(server_url: str, statement: str) -> None:
    """Run one administrative statement (tests use it to cut the database off)."""
    async with open_bridge() as bridge:
        await bridge.run(_admin, server_url, statement)


async def reachable(server_url: str) -> bool:
    try:
        await execute(server_url, "SELECT 1")
    except (OSError, asyncpg.PostgresError):
        return False
    return True
