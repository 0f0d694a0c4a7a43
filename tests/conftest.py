"""Fixtures shared by every test layer.

``database_url`` is parametrised: every test that uses it runs on SQLite and on PostgreSQL.
PostgreSQL comes from SORA_TEST_POSTGRES_URL (default: the local server on 127.0.0.1:5432,
database ``test``); each test gets a fresh database, dropped afterwards. When PostgreSQL is
not reachable its tests skip on a laptop, but fail under CI=true.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import trio

from sora_actors.settings import Settings, load
from sora_actors.storage import provision
from tests.harness import LiveServer, live_server

DEFAULT_POSTGRES = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
TEST_SECRET = "test-secret-" + "x" * 40
# Tests that are not about plans run users without a licence on a plan without limits, so
# that the shipped FREE plan's limits do not change what they test (the plan tests set
# their own plans and default_plan).
OPEN_PLAN = {"OPEN": {}}


def postgres_server_url() -> str:
    return os.environ.get("SORA_TEST_POSTGRES_URL", DEFAULT_POSTGRES)


_pg_ok: bool | None = None


def require_postgres() -> str:
    """The server URL, or skip (fail under CI) when it is unreachable."""
    global _pg_ok
    url = postgres_server_url()
    if _pg_ok is None:
        _pg_ok = trio.run(provision.reachable, url)
    if not _pg_ok:
        message = f"PostgreSQL not reachable at {url}"
        if os.environ.get("CI") == "true":
            pytest.fail(message + " (CI=true: PostgreSQL tests must run)")
        pytest.skip(message)  # a laptop without PostgreSQL; under CI=true: failed above
    return url


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for this test."""
    server = require_postgres()
    name = f"sora_test_{uuid.uuid4().hex[:12]}"
    url = trio.run(provision.create_database, server, name)
    try:
        yield url
    finally:
        trio.run(provision.drop_database, server, name)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'sora.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str:
    """Each test using this runs twice: on SQLite and on PostgreSQL."""
    fixture = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    url: str = request.getfixturevalue(fixture)
    return url


def make_settings(tmp_path: Path, database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": str(tmp_path / "data"),
        "database_url": database_url,
        "jwt_secret": TEST_SECRET,
        "bcrypt_rounds": 4,
        "shutdown_grace_seconds": 2.0,
        "plans": OPEN_PLAN,
        "default_plan": "OPEN",
    }
    values.update(overrides)
    return load(environ={}, overrides=values)


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    """Test settings; a module overrides this fixture to change them for its `server`."""
    return make_settings(tmp_path, database_url)


@pytest.fixture
async def server(settings: Settings) -> AsyncIterator[LiveServer]:
    """A real server on port 0 with the ``settings`` fixture, stopped after the test."""
    async with live_server(settings) as running:
        yield running


@pytest.fixture
async def storage(database_url: str) -> AsyncIterator[Any]:
    from sora_actors.storage import open_storage

    async with open_storage(database_url) as opened:
        yield opened
