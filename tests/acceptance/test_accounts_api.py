"""Accounts over real HTTP against a real Hypercorn server, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import make_settings
from tests.harness import LiveServer, assert_error, live_server


async def test_register_login_me(server: LiveServer) -> None:
    created = await server.client.post(
        "/api/auth/register",
        json={"username": "Alice", "email": "alice@example.com", "password": "correct horse"},
    )
    assert created.status_code == 201
    body = created.json()
    assert body["success"] is True
    user = body["data"]
    assert set(user) == {"id", "username", "email", "role"}
    assert user["role"] == "USER"
    assert user["username"] == "Alice" and user["email"] == "alice@example.com"

    login = await server.client.post(
        "/api/auth/login", json={"username": "alice", "password": "correct horse"}
    )
    assert login.status_code == 200
    data = login.json()["data"]
    assert data["user"] == user
    assert isinstance(data["expiresAt"], int) and data["expiresAt"] > 1_700_000_000_000

    for header in (f"Bearer {data['token']}", data["token"]):  # bare token accepted too
        me = await server.client.get("/api/auth/me", headers={"Authorization": header})
        assert me.status_code == 200, me.text
        profile = me.json()["data"]
        assert profile["id"] == user["id"]
        assert profile["role"] == "USER"
        assert profile["lastLogin"].endswith("Z")


async def test_duplicate_username_and_email_are_409(server: LiveServer) -> None:
    await server.register("carol", email="carol@example.com")
    same_name = await server.client.post(
        "/api/auth/register", json={"username": "CAROL", "password": "password-2"}
    )
    assert_error(same_name, 409, "USERNAME_TAKEN")
    same_email = await server.client.post(
        "/api/auth/register",
        json={"username": "carol2", "email": "Carol@Example.com", "password": "password-2"},
    )
    assert_error(same_email, 409, "EMAIL_TAKEN")


async def test_one_message_for_unknown_user_and_wrong_password(server: LiveServer) -> None:
    await server.register("dave")
    unknown = await server.client.post(
        "/api/auth/login", json={"username": "nobody", "password": "password-1"}
    )
    wrong = await server.client.post(
        "/api/auth/login", json={"username": "dave", "password": "wrong-password"}
    )
    first = assert_error(unknown, 401, "INVALID_CREDENTIALS")
    second = assert_error(wrong, 401, "INVALID_CREDENTIALS")
    assert first == second


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"username": "ab", "password": "password-1"}, "username"),
        ({"username": "has space", "password": "password-1"}, "username"),
        ({"username": "erin", "password": "short"}, "password"),
        ({"username": "erin", "password": "é" * 37}, "password"),  # 74 bytes > bcrypt's 72
        ({"username": "erin", "email": "not-an-email", "password": "password-1"}, "email"),
        ({"password": "password-1"}, "username"),
    ],
)
async def test_register_validation(server: LiveServer, body: dict[str, str], field: str) -> None:
    response = await server.client.post("/api/auth/register", json=body)
    error = assert_error(response, 400, "VALIDATION_ERROR")
    assert field in [item["field"] for item in error["error"]["details"]]
    # nothing was written: the same username can still be registered properly
    if body.get("username") == "erin":
        await server.register("erin")


async def test_password_of_exactly_72_bytes_works(server: LiveServer) -> None:
    password = "é" * 36  # 72 bytes
    await server.register("frank", password=password)
    assert await server.login("frank", password=password)


async def test_malformed_requests_get_envelopes(server: LiveServer) -> None:
    client = server.client
    bad_json = await client.post(
        "/api/auth/login", content=b"{nope", headers={"Content-Type": "application/json"}
    )
    assert_error(bad_json, 400, "INVALID_JSON")
    not_json = await client.post("/api/auth/login", content=b"username=x")
    assert_error(not_json, 415, "UNSUPPORTED_MEDIA_TYPE")
    unknown = await client.get("/api/nothing-here")
    assert_error(unknown, 404, "NOT_FOUND")
    wrong_method = await client.delete("/api/auth/login")
    body = assert_error(wrong_method, 405, "METHOD_NOT_ALLOWED")
    assert "POST" in wrong_method.headers["Allow"]
    assert body["error"]["message"]
    huge = await client.post(
        "/api/auth/login",
        content=b'{"username": "' + b"x" * 2_000_000 + b'"}',
        headers={"Content-Type": "application/json"},
    )
    assert_error(huge, 413, "PAYLOAD_TOO_LARGE")


async def test_auth_errors(server: LiveServer) -> None:
    client = server.client
    assert_error(await client.get("/api/auth/me"), 401, "AUTH_REQUIRED")
    assert_error(
        await client.get("/api/auth/me", headers={"Authorization": "Bearer garbage"}),
        401,
        "INVALID_TOKEN",
    )


async def test_expired_token_is_refused(tmp_path: Path, sqlite_url: str) -> None:
    import jwt

    settings = make_settings(tmp_path, sqlite_url)
    async with live_server(settings) as server:
        await server.register("gina")
        user = (
            await server.client.post(
                "/api/auth/login", json={"username": "gina", "password": "password-1"}
            )
        ).json()["data"]["user"]
        token = jwt.encode(
            {"sub": user["id"], "sid": "s", "exp": 1_000_000_000}, settings.jwt_secret, "HS256"
        )
        response = await server.client.get(
            "/api/auth/me", headers={"Authorization": f"Bearer {token}"}
        )
        assert_error(response, 401, "TOKEN_EXPIRED")


async def test_failed_logins_are_throttled(tmp_path: Path, sqlite_url: str) -> None:
    settings = make_settings(tmp_path, sqlite_url, login_max_failures=3)
    async with live_server(settings) as server:
        await server.register("hank")
        for _ in range(3):
            wrong = await server.client.post(
                "/api/auth/login", json={"username": "hank", "password": "bad-password"}
            )
            assert wrong.status_code == 401
        limited = await server.client.post(
            "/api/auth/login", json={"username": "hank", "password": "password-1"}
        )
        assert_error(limited, 429, "TOO_MANY_LOGIN_ATTEMPTS")
        # Real time passes between the first failure and this request, so only the window's
        # bounds hold here; the exact value is asserted in virtual time in
        # tests/unit/test_throttle_and_tokens.py (test_login_throttle_in_virtual_time).
        assert 1 <= int(limited.headers["Retry-After"]) <= 300


async def test_activity_log_records_register_and_logins(tmp_path: Path, database_url: str) -> None:
    from sora_actors.storage import open_storage

    settings = make_settings(tmp_path, database_url)
    async with live_server(settings) as server:
        await server.register("ivy")
        await server.login("ivy")
        await server.client.post(
            "/api/auth/login", json={"username": "ivy", "password": "nope-nope"}
        )
    async with open_storage(database_url) as storage:
        actions = [entry["action"] for entry in await storage.accounts.activities()]
    assert sorted(actions) == ["login", "login_failed", "register"]


async def test_cors_for_file_pages_in_development(server: LiveServer) -> None:
    preflight = await server.client.options(
        "/api/auth/login",
        headers={"Origin": "null", "Access-Control-Request-Method": "POST"},
    )
    assert preflight.headers["Access-Control-Allow-Origin"] == "null"
    assert "Authorization" in preflight.headers["Access-Control-Allow-Headers"]
    foreign = await server.client.get("/health", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in foreign.headers


async def test_unexpected_error_is_a_json_500_without_trace(
    tmp_path: Path, sqlite_url: str
) -> None:
    settings = make_settings(tmp_path, sqlite_url)
    async with live_server(settings) as server:
        headers = await server.user("jack")
        # Reach into the running service and make one store call blow up.
        accounts = server.services.storage.accounts

        async def boom(user_id: str, session_id: str) -> None:
            raise RuntimeError("secret internals /etc/passwd")

        accounts.access = boom  # type: ignore[method-assign,assignment]
        server.services.runtime.access.forget_all()  # the login cached the account
        response = await server.client.get("/api/auth/me", headers=headers)
        body = assert_error(response, 500, "INTERNAL_ERROR")
        assert "secret internals" not in response.text
        assert body["message"]


async def test_health(server: LiveServer) -> None:
    response = await server.client.get("/health")
    assert response.status_code == 200
    data = response.json()["data"]
    assert data["status"] == "ok"
    assert data["database"]["status"] == "ok"
    assert data["version"]
    assert data["uptime"] >= 0


@pytest.mark.postgres
async def test_health_is_503_when_the_database_is_unreachable(
    tmp_path: Path, postgres_url: str
) -> None:
    from sora_actors.storage import provision

    name = postgres_url.rsplit("/", 1)[1]
    settings = make_settings(tmp_path, postgres_url)
    async with live_server(settings) as server:
        assert (await server.client.get("/health")).status_code == 200
        admin = provision.with_database(postgres_url, "postgres")
        await provision.execute(admin, f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        await provision.execute(
            admin,
            f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'",
        )
        response = await server.client.get("/health")
        body = assert_error(response, 503, "DATABASE_UNAVAILABLE")
        assert body["error"]["details"]["status"] == "degraded"
        # Routes that need the database answer 503 in the envelope too, not 500.
        login = await server.client.post(
            "/api/auth/login", json={"username": "xavier", "password": "password-1"}
        )
        assert_error(login, 503, "DATABASE_UNAVAILABLE")
        await provision.execute(admin, f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        assert (await server.client.get("/health")).status_code == 200
