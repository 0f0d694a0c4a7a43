"""Storage behaviour, run on SQLite and PostgreSQL alike."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import trio

from sora_actors.clock import wall_ms
from sora_actors.storage import (
    Activity,
    Conflict,
    DatabaseInUse,
    NewSession,
    SchemaTooNew,
    Storage,
    latest_version,
    open_storage,
)
from sora_actors.storage.migrations import available
from sora_actors.storage.tables import metadata


async def test_migrations_create_every_table_the_code_describes(storage: Storage) -> None:
    async def columns(conn: Any, table: str) -> set[str]:
        rows = await conn.fetch_all(sa.select(sa.text("*")).select_from(sa.table(table)).limit(0))
        del rows
        result = await conn.fetch_all(f"SELECT * FROM {table} WHERE 1 = 0")
        del result
        if storage.dialect == "sqlite":
            info = await conn.fetch_all(f"PRAGMA table_info({table})")
            return {row["name"] for row in info}
        info = await conn.fetch_all(
            "SELECT column_name FROM information_schema.columns WHERE table_name = :t",
            {"t": table},
        )
        return {row["column_name"] for row in info}

    for table in metadata.sorted_tables:
        found = await storage.database.run(columns, table.name)
        assert found == {column.name for column in table.columns}, table.name
    assert await storage.database.schema_version() == latest_version()


async def test_migrate_twice_is_a_no_op(database_url: str) -> None:
    async with open_storage(database_url, migrate=False) as storage:
        # Every shipped version, in order (numbers are reserved per branch: gaps may be).
        shipped = [migration.version for migration in available()]
        assert await storage.database.migrate() == shipped and shipped[-1] == latest_version()
        assert await storage.database.migrate() == []


async def test_a_shipped_version_below_the_newest_applied_is_still_applied(
    database_url: str,
) -> None:
    """A database that got later migrations first (parallel work landing in another order)
    still gets the earlier one, once."""
    async with open_storage(database_url) as storage:

        async def undo_0004(conn: Any) -> None:
            await conn.execute("DROP TABLE sessions")
            await conn.execute("ALTER TABLE users DROP COLUMN banned")
            await conn.execute("DELETE FROM schema_version WHERE version = 4")

        await storage.database.run(undo_0004)
        assert await storage.database.schema_version() == latest_version() > 4
        assert await storage.database.migrate() == [4]
        assert await storage.database.migrate() == []
        await storage.accounts.create_user("zoe", None, "h", Activity("register"))
        zoe = await storage.accounts.by_username("zoe")
        assert zoe is not None and zoe.banned is False


async def test_a_newer_schema_is_refused(database_url: str) -> None:
    async with open_storage(database_url) as storage:

        async def bump(conn: Any) -> None:
            await conn.execute("INSERT INTO schema_version (version) VALUES (9999)")

        await storage.database.run(bump)
    with pytest.raises(SchemaTooNew, match="9999"):
        async with open_storage(database_url):
            pass


async def test_user_uniqueness_ignores_case(storage: Storage) -> None:
    accounts = storage.accounts
    await accounts.create_user("Zoe", "zoe@example.com", "h", Activity("register"))
    with pytest.raises(Conflict) as name_clash:
        await accounts.create_user("zOE", None, "h", Activity("register"))
    assert name_clash.value.field == "username"
    with pytest.raises(Conflict) as mail_clash:
        await accounts.create_user("zoe2", "ZOE@example.com", "h", Activity("register"))
    assert mail_clash.value.field == "email"
    # The failed units of work wrote nothing: no user, no activity.
    assert [a["action"] for a in await accounts.activities()] == ["register"]


async def test_concurrent_registrations_of_one_name_admit_exactly_one(storage: Storage) -> None:
    outcomes: list[str] = []

    async def attempt(i: int) -> None:
        try:
            await storage.accounts.create_user("race", None, f"h{i}", Activity("register"))
            outcomes.append("ok")
        except Conflict:
            outcomes.append("conflict")

    async with trio.open_nursery() as nursery:
        for i in range(10):
            nursery.start_soon(attempt, i)
    assert sorted(outcomes) == ["conflict"] * 9 + ["ok"]


async def test_login_stamps_last_login_and_logs(storage: Storage) -> None:
    user = await storage.accounts.create_user("yan", None, "h", Activity("register"))
    assert user.last_login is None
    session = NewSession("sid-1", user.id, expires_at=wall_ms() + 60_000, ip="10.0.0.1")
    await storage.accounts.record_login(session, Activity("login", user.id, ip="10.0.0.1"))
    again, state = await storage.accounts.access(user.id, "sid-1")
    assert again is not None and again.last_login is not None
    assert state is not None and state.revoked_at is None
    assert state.expires_at == session.expires_at
    entries = await storage.accounts.activities(user.id)
    assert [e["action"] for e in entries] == ["login", "register"]
    assert entries[0]["ip"] == "10.0.0.1"


async def test_a_second_process_on_one_sqlite_file_is_refused(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'one.db'}"
    async with open_storage(url):
        with pytest.raises(DatabaseInUse, match="PostgreSQL"):
            async with open_storage(url):
                pass
    async with open_storage(url):  # released on close
        pass
