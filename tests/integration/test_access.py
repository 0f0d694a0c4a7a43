"""The access cache against real storage: exact lifetimes in virtual time, no stale entry
kept from a read that raced a change, and no answer from memory while PostgreSQL's
notification listener is away."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

from sora_actors.access import Access, Changed, Refused
from sora_actors.clock import wall_ms
from sora_actors.control import ControlEvents
from sora_actors.storage import Activity, NewSession, Storage, UserChanges, open_storage


async def _user_with_session(storage: Storage, name: str) -> tuple[str, str]:
    user = await storage.accounts.create_user(name, None, "h", Activity("register"))
    session = NewSession(f"sid-{name}", user.id, wall_ms() + 3_600_000)
    await storage.accounts.record_login(session, Activity("login", user.id))
    return user.id, session.id


async def test_an_entry_is_used_for_exactly_the_ttl(
    sqlite_url: str, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_storage(sqlite_url) as storage:
        user_id, session_id = await _user_with_session(storage, "ann")
        access = Access(storage, ControlEvents(storage), ttl_s=1.0)
        await access.check(user_id, session_id)
        assert access.reads == 1
        await trio.sleep(0.999)
        await access.check(user_id, session_id)
        assert access.reads == 1
        await trio.sleep(0.001)
        await access.check(user_id, session_id)
        assert access.reads == 2
        access.forget_session(session_id)
        await access.check(user_id, session_id)
        assert access.reads == 3


async def test_a_read_that_raced_a_change_is_not_kept(sqlite_url: str) -> None:
    """The read returns the account as it was; the ban lands before the read's answer is
    stored. The next check must see the ban (a stale entry would let it through)."""
    async with open_storage(sqlite_url) as storage:
        user_id, session_id = await _user_with_session(storage, "ben")
        access = Access(storage, ControlEvents(storage), ttl_s=3600)
        read = storage.accounts.access

        async def read_then_ban(uid: str, sid: str) -> Any:
            before = await read(uid, sid)
            await access.update_user(uid, UserChanges(banned=True), Activity("admin_user_ban"))
            return before

        storage.accounts.access = read_then_ban  # type: ignore[method-assign]
        await access.check(user_id, session_id)  # answered from the read: not banned yet
        storage.accounts.access = read  # type: ignore[method-assign]
        with pytest.raises(Refused) as refused:
            await access.check(user_id, session_id)
        assert refused.value.code == "ACCOUNT_BANNED"


async def test_watchers_hear_which_users_and_sessions_changed(sqlite_url: str) -> None:
    async with open_storage(sqlite_url) as storage:
        user_id, session_id = await _user_with_session(storage, "cid")
        access = Access(storage, ControlEvents(storage))
        heard: list[Changed] = []
        got = trio.Event()

        async def watcher(changed: Changed) -> None:
            heard.append(changed)
            got.set()

        access.watch(watcher)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(access.run)
            await access.logout(session_id, user_id, Activity("logout", user_id))
            await got.wait()
            nursery.cancel_scope.cancel()
        assert heard[0].sessions == {session_id} and not heard[0].everything
        with pytest.raises(Refused) as refused:
            await access.check(user_id, session_id)
        assert refused.value.code == "SESSION_REVOKED"


async def _terminate_listeners(conn: Any) -> None:
    await conn.fetch_all(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE datname = current_database() AND query LIKE 'LISTEN%'"
    )


async def _wait_for(predicate: Any) -> None:
    with trio.fail_after(10):
        while not predicate():
            await trio.sleep(0.01)


@pytest.mark.postgres
async def test_nothing_is_served_from_memory_while_the_listener_is_away(
    postgres_url: str,
) -> None:
    async with open_storage(postgres_url) as storage:
        user_id, session_id = await _user_with_session(storage, "dora")
        control = ControlEvents(storage)
        access = Access(storage, control, ttl_s=3600)
        resets = 0

        def count_reset() -> None:
            nonlocal resets
            resets += 1

        control.on_reset(count_reset)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(control.run)
            await _wait_for(lambda: control.live)
            connected_resets = resets
            await access.check(user_id, session_id)
            await access.check(user_id, session_id)
            assert access.reads == 1  # cached while the listener is up

            await storage.database.run(_terminate_listeners)
            await _wait_for(lambda: not control.live)
            assert resets == connected_resets + 1  # dropped at once when lost
            reads = access.reads
            await access.check(user_id, session_id)
            await access.check(user_id, session_id)
            assert access.reads == reads + 2  # every check reads while nobody listens

            await _wait_for(lambda: control.live)  # reconnected (retry after 1 s)
            assert resets == connected_resets + 2
            await access.check(user_id, session_id)
            await access.check(user_id, session_id)
            assert access.reads == reads + 3
            nursery.cancel_scope.cancel()
