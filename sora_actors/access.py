"""Who may use the service right now: accounts and login sessions, cached per process.

Every authenticated request and WebSocket ``auth`` asks `Access.check` whether the
token's account is still active and unbanned and its session not revoked. Reading that
from the database per request is what this avoids: the answer is kept in memory and
dropped when the account or the session changes, so it is as correct as a read.

How changes reach the cache:
- this process's own changes go through the writer methods below, which drop the copies
  after their unit of work commits (the units themselves are in storage/accounts.py);
- other processes' changes arrive as control events (`control.py`): PostgreSQL
  notifications from the same unit of work, or, on SQLite, the command line's commits seen
  within a second. While the notification listener is down nothing is served from memory,
  and everything is dropped when it is back;
- as a safety net, an entry is used for at most ``ttl_s`` (1 s by default) after its read.

A read that was in flight while a change arrived is used for its request but not kept
(a generation counter), so a stale row never outlives the change that made it stale.

Watchers (the WebSocket layer) hear which users and sessions changed, after the fact and
in batches, so that they can close the connections that lost access.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import NoReturn

import trio

from .clock import wall_ms
from .control import ControlEvents
from .storage import Activity, NewSession, SessionState, Storage, User, UserChanges

log = logging.getLogger("sora_actors.access")


class Refused(Exception):
    """The token's account or session may no longer be used; ``code`` says why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class _Entry:
    user_id: str
    user: User | None
    session: SessionState | None
    read_at: float  # trio time


@dataclass
class Changed:
    """What changed since watchers were last told (``everything``: unknown, assume all)."""

    users: set[str] = field(default_factory=set)
    sessions: set[str] = field(default_factory=set)
    everything: bool = False

    def __bool__(self) -> bool:
        return self.everything or bool(self.users or self.sessions)

    def touches(self, user_id: str, session_id: str) -> bool:
        return self.everything or user_id in self.users or session_id in self.sessions


Watcher = Callable[[Changed], Awaitable[None]]


def usable(user: User) -> User:
    """The account, if it may be used at all (by a token or by a personal API key)."""
    if not user.is_active:
        raise Refused("ACCOUNT_DISABLED", "This account is disabled.")
    if user.banned:
        raise Refused("ACCOUNT_BANNED", "This account is banned.")
    return user


def judge(user: User | None, session: SessionState | None, now_ms: int) -> User:
    """The account, if it and the session may be used; Refused otherwise."""
    if user is None:
        raise Refused("INVALID_TOKEN", "The account behind this token no longer exists.")
    usable(user)
    if session is None:
        raise Refused("INVALID_TOKEN", "This token's session is unknown; log in again.")
    if session.revoked_at is not None:
        raise Refused("SESSION_REVOKED", "This session has ended (logged out); log in again.")
    if session.expires_at <= now_ms:
        raise Refused("TOKEN_EXPIRED", "The token has expired; log in again.")
    return user


class Access:
    """The cache, and the one writer of changes that affect access (see the module doc)."""

    def __init__(self, storage: Storage, control: ControlEvents, *, ttl_s: float = 1.0) -> None:
        self._storage = storage
        self._control = control
        self._ttl_s = ttl_s
        self._sessions: dict[str, _Entry] = {}  # session id -> entry
        self._generation = 0
        self._changed = Changed()
        self._wakeup = trio.Event()
        self._watchers: list[Watcher] = []
        self.reads = 0  # database reads made on behalf of `check` (for tests and /metrics)
        control.subscribe("user", self.forget_user)
        control.subscribe("session", self.forget_session)
        control.on_reset(self.forget_all)

    # -- reading --------------------------------------------------------------------------

    async def check(self, user_id: str, session_id: str) -> User:
        """The account behind a verified token; Refused when it may no longer be used."""
        now = trio.current_time()
        entry = self._sessions.get(session_id)
        if (
            entry is None
            or entry.user_id != user_id
            or now - entry.read_at >= self._ttl_s
            or not self._control.live
        ):
            generation = self._generation
            self.reads += 1
            user, session = await self._storage.accounts.access(user_id, session_id)
            entry = _Entry(user_id, user, session, now)
            if generation == self._generation and self._control.live and self._ttl_s > 0:
                self._sessions[session_id] = entry
        return judge(entry.user, entry.session, wall_ms())

    # -- invalidation ---------------------------------------------------------------------

    def forget_user(self, user_id: str) -> None:
        self._drop_entries(user_id)
        self._changed.users.add(user_id)
        self._wakeup.set()

    def _drop_entries(self, user_id: str) -> None:
        self._generation += 1
        for session_id, entry in tuple(self._sessions.items()):
            if entry.user_id == user_id:
                del self._sessions[session_id]

    def forget_session(self, session_id: str) -> None:
        self._generation += 1
        self._sessions.pop(session_id, None)
        self._changed.sessions.add(session_id)
        self._wakeup.set()

    def forget_all(self) -> None:
        self._generation += 1
        self._sessions.clear()
        self._changed.everything = True
        self._wakeup.set()

    def watch(self, watcher: Watcher) -> None:
        """Have ``watcher`` told (in batches, from `run`) which users and sessions changed."""
        self._watchers.append(watcher)

    async def run(self) -> NoReturn:
        """Tell watchers of changes, and prune expired entries, until cancelled."""
        while True:
            with trio.move_on_after(max(self._ttl_s, 1.0) * 10):
                await self._wakeup.wait()
            self._wakeup = trio.Event()
            self._prune()
            changed, self._changed = self._changed, Changed()
            if not changed:
                continue
            for watcher in tuple(self._watchers):
                try:
                    await watcher(changed)
                except Exception:
                    log.exception("an access watcher failed")

    def _prune(self) -> None:
        now = trio.current_time()
        for session_id, entry in tuple(self._sessions.items()):
            if now - entry.read_at >= self._ttl_s:
                del self._sessions[session_id]

    # -- writing: every change that affects access, then the local copies dropped ----------

    async def login(self, session: NewSession, activity: Activity) -> None:
        await self._storage.accounts.record_login(session, activity)
        # lastLogin changed; access did not, so open connections need no recheck.
        self._drop_entries(session.user_id)

    async def logout(self, session_id: str, user_id: str, activity: Activity) -> bool:
        revoked = await self._storage.accounts.revoke_session(session_id, user_id, activity)
        self.forget_session(session_id)
        return revoked

    async def update_user(
        self, user_id: str, changes: UserChanges, activity: Activity
    ) -> User | None:
        """See `AccountStore.update_user`."""
        try:
            return await self._storage.accounts.update_user(user_id, changes, activity)
        finally:
            self.forget_user(user_id)
