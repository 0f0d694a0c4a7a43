"""Versioned migrations: ``migrations/NNNN_name.sql`` applied in order, in one transaction.

Plain SQL files keep the schema readable; each runs unchanged on SQLite and PostgreSQL.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

from ..clock import wall_ms
from .errors import SchemaTooNew

_FILE = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
# Any constant works; it only has to be the same in every sora-actors process.
_PG_MIGRATION_LOCK = 0x50_4A_41_43


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]


def _split(sql: str) -> tuple[str, ...]:
    parts = re.split(r"^\s*;\s*$", sql, flags=re.MULTILINE)
    cleaned = []
    for part in parts:
        body = "\n".join(
            line for line in part.splitlines() if not line.strip().startswith("--")
        ).strip()
        if body:
            cleaned.append(body)
    return tuple(cleaned)


def available() -> tuple[Migration, ...]:
    """Every migration shipped with this version, oldest first."""
    found = []
    for entry in resources.files(__package__).joinpath("migrations").iterdir():
        match = _FILE.fullmatch(entry.name)
        if match:
            found.append(
                Migration(int(match.group(1)), entry.name, _split(entry.read_text("utf-8")))
            )
    found.sort(key=lambda m: m.version)
    return tuple(found)


def latest_version() -> int:
    return available()[-1].version


async def apply(connection: Any, dialect: str) -> list[int]:
    """Bring the schema up to date; return the versions applied (asyncio side, one unit)."""
    if dialect == "postgresql":
        # Several instances may start at once: one migrates, the others wait, then see it done.
        await connection.execute(f"SELECT pg_advisory_xact_lock({_PG_MIGRATION_LOCK})")
    await connection.execute(
        "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL, applied_at BIGINT)"
    )
    current = await connection.fetch_val("SELECT MAX(version) FROM schema_version") or 0
    newest = latest_version()
    if current > newest:
        raise SchemaTooNew(
            f"the database is at schema version {current}, but this sora-actors only knows "
            f"up to {newest}: upgrade sora-actors (refusing to touch a newer database)"
        )
    # Every shipped version not applied yet, oldest first (not only those above the newest
    # applied: a build that shipped a later number first must still get the earlier one).
    done = {row[0] for row in await connection.fetch_all("SELECT version FROM schema_version")}
    applied = []
    for migration in available():
        if migration.version in done:
            continue
        for statement in migration.statements:
            await connection.execute(statement)
        await connection.execute(
            "INSERT INTO schema_version (version, applied_at) VALUES (:v, :t)",
            {"v": migration.version, "t": wall_ms()},
        )
        applied.append(migration.version)
    return applied
