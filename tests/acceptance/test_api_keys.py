"""Personal API keys at ``/api/auth/api-keys``, end to end on SQLite and PostgreSQL.

A key is shown once, stored as its hash only, works as ``Authorization: Bearer sk-sora-...``
on the whole API as its user, and stops working the moment it is revoked or its account is
disabled.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from sora_actors.settings import Settings
from sora_actors.storage.tables import api_keys, users
from tests.conftest import make_settings
from tests.harness import LiveServer, assert_error

LIMIT = 3


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(tmp_path, database_url, api_keys_per_user=LIMIT)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def make_key(server: LiveServer, headers: dict[str, str], name: str) -> dict[str, Any]:
    response = await server.client.post("/api/auth/api-keys", json={"name": name}, headers=headers)
    assert response.status_code == 201, response.text
    assert response.headers["cache-control"] == "no-store"
    made: dict[str, Any] = response.json()["data"]
    return made


async def rows(server: LiveServer) -> list[dict[str, Any]]:
    async def read(conn: Any) -> list[dict[str, Any]]:
        return [dict(row._mapping) for row in await conn.fetch_all(api_keys.select())]

    return await server.services.storage.database.run(read)


async def test_a_key_is_shown_once_stored_hashed_and_works_as_its_user(
    server: LiveServer,
) -> None:
    alice = await server.user("alice")
    made = await make_key(server, alice, "laptop")
    key = made["key"]
    assert key.startswith("sk-sora-") and len(key) >= len("sk-sora-") + 32
    assert made["prefix"] == key[:12] and made["last4"] == key[-4:]
    assert made["name"] == "laptop" and made["lastUsedAt"] is None and made["revokedAt"] is None

    # Stored as its SHA-256 only: the key itself is nowhere in the table.
    (row,) = await rows(server)
    assert row["key_hash"] == hashlib.sha256(key.encode()).hexdigest()
    assert key not in repr(row)

    # Listed without the key.
    listing = await server.client.get("/api/auth/api-keys", headers=alice)
    assert listing.status_code == 200
    data = listing.json()["data"]
    assert data["maxActive"] == LIMIT
    assert key not in listing.text
    assert [item["id"] for item in data["keys"]] == [made["id"]]
    fields = {"id", "name", "prefix", "last4", "createdAt", "lastUsedAt", "revokedAt"}
    assert set(data["keys"][0]) == fields

    # The key is alice on the API: who am I, create a task, read it back with the token.
    me = await server.client.get("/api/auth/me", headers=bearer(key))
    assert me.status_code == 200 and me.json()["data"]["username"] == "alice"
    created = await server.client.post(
        "/api/video/tasks", json={"prompt": "made with a key"}, headers=bearer(key)
    )
    assert created.status_code == 201, created.text
    video_id = created.json()["data"]["videoId"]
    read = await server.client.get(f"/api/video/tasks/{video_id}", headers=alice)
    assert read.status_code == 200

    # Its use is recorded.
    listing = await server.client.get("/api/auth/api-keys", headers=alice)
    assert listing.json()["data"]["keys"][0]["lastUsedAt"] is not None

    # Another user sees neither the key nor alice's task through it.
    bob = await server.user("bob")
    theirs = await server.client.get("/api/auth/api-keys", headers=bob)
    assert theirs.json()["data"]["keys"] == []
    assert_error(
        await server.client.delete(f"/api/auth/api-keys/{made['id']}", headers=bob),
        404,
        "API_KEY_NOT_FOUND",
    )
    assert (await server.client.get("/api/auth/me", headers=bearer(key))).status_code == 200

    actions = [entry["action"] for entry in await server.services.storage.accounts.activities()]
    assert "api_key_create" in actions


async def test_revoked_and_unknown_keys_are_refused_at_once(server: LiveServer) -> None:
    alice = await server.user("alice")
    made = await make_key(server, alice, "ci")
    key = made["key"]
    assert (await server.client.get("/api/video/stats", headers=bearer(key))).status_code == 200

    revoked = await server.client.delete(f"/api/auth/api-keys/{made['id']}", headers=alice)
    assert revoked.status_code == 200
    assert revoked.json()["data"]["revokedAt"] is not None
    assert_error(
        await server.client.get("/api/video/stats", headers=bearer(key)), 401, "API_KEY_REVOKED"
    )
    # Revoking again changes nothing (and logs nothing more).
    again = await server.client.delete(f"/api/auth/api-keys/{made['id']}", headers=alice)
    assert again.json()["data"]["revokedAt"] == revoked.json()["data"]["revokedAt"]
    entries = await server.services.storage.accounts.activities()
    revokes = [entry for entry in entries if entry["action"] == "api_key_revoke"]
    assert len(revokes) == 1 and made["id"] in revokes[0]["details"]

    # A key that was never made, and one with a changed character, are refused.
    for wrong in ("sk-sora-" + "x" * 43, key[:-1] + ("A" if key[-1] != "A" else "B")):
        assert_error(
            await server.client.get("/api/auth/me", headers=bearer(wrong)), 401, "INVALID_API_KEY"
        )
    # A bare key (no "Bearer ") is read like a bare token.
    other = await make_key(server, alice, "bare")
    bare = await server.client.get("/api/auth/me", headers={"Authorization": other["key"]})
    assert bare.status_code == 200


async def test_a_disabled_or_banned_account_s_keys_are_refused(server: LiveServer) -> None:
    alice = await server.user("alice")
    key = (await make_key(server, alice, "x"))["key"]
    user = await server.services.storage.accounts.by_username("alice")
    assert user is not None

    async def change(conn: Any, **values: bool) -> None:
        await conn.execute(users.update().where(users.c.id == user.id).values(**values))

    await server.services.storage.database.run(change, banned=True)
    assert_error(
        await server.client.get("/api/auth/me", headers=bearer(key)), 401, "ACCOUNT_BANNED"
    )
    await server.services.storage.database.run(change, banned=False, is_active=False)
    assert_error(
        await server.client.get("/api/auth/me", headers=bearer(key)), 401, "ACCOUNT_DISABLED"
    )


async def test_keys_are_limited_per_user_and_managed_only_after_logging_in(
    server: LiveServer,
) -> None:
    alice = await server.user("alice")
    made = [await make_key(server, alice, f"k{n}") for n in range(LIMIT)]
    full = await server.client.post("/api/auth/api-keys", json={}, headers=alice)
    assert assert_error(full, 409, "TOO_MANY_API_KEYS")["error"]["details"] == {"limit": LIMIT}
    # Revoked keys do not count.
    await server.client.delete(f"/api/auth/api-keys/{made[0]['id']}", headers=alice)
    extra = await make_key(server, alice, "")
    assert extra["name"] == ""
    listing = (await server.client.get("/api/auth/api-keys", headers=alice)).json()["data"]
    assert {key["id"] for key in listing["keys"]} == {extra["id"]} | {key["id"] for key in made}

    # A key cannot make, list or revoke keys: a leaked key cannot entrench itself.
    key = made[1]["key"]
    for method, path in (
        ("POST", "/api/auth/api-keys"),
        ("GET", "/api/auth/api-keys"),
        ("DELETE", f"/api/auth/api-keys/{made[2]['id']}"),
    ):
        refused = await server.client.request(
            method, path, headers=bearer(key), json={} if method == "POST" else None
        )
        assert_error(refused, 403, "FORBIDDEN")
    assert_error(await server.client.get("/api/auth/api-keys"), 401, "AUTH_REQUIRED")
    too_long = await server.client.post(
        "/api/auth/api-keys", json={"name": "n" * 101}, headers=alice
    )
    assert_error(too_long, 400, "VALIDATION_ERROR")
