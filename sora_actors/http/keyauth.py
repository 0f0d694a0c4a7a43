"""Personal API keys (``sk-sora-...``): making them, and knowing who holds one.

A key is 256 random bits after a fixed prefix, so a plain SHA-256 of it is all that is
stored: nobody can guess a key from its hash, and a slow salted hash would only cost every
request a bcrypt. Each use reads the key and its account in one statement, so a revoked key
or a disabled account is refused at once. The last-used time is stamped at most once a
minute per key (`UsageStamps`): a busy script does not turn every request into a write.
"""

from __future__ import annotations

import hashlib
import secrets
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

import trio
from quart import current_app

from ..access import Refused, usable
from ..clock import wall_ms
from ..storage import User
from ..storage.apikeys import ApiKeyStore
from .envelope import ApiError
from .security import Principal

KEY_PREFIX = "sk-sora-"
SHOWN_PREFIX_CHARS = 4  # after KEY_PREFIX: enough to tell keys apart in a list
KEY_AUTH = "sora_actors.key_auth"
# A key has no expiry of its own; this stands for "until revoked" (9999-12-31).
NEVER_MS = 253_402_300_799_000
STAMP_INTERVAL_S = 60.0


def new_key() -> str:
    """A fresh key: the prefix and 43 URL-safe characters (32 random bytes)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def bearer_key(header: str | None) -> str | None:
    """The API key in an Authorization header (``Bearer sk-sora-...`` or bare), else None."""
    if not header:
        return None
    token = header.strip()
    scheme, _, rest = token.partition(" ")
    if rest and scheme.lower() == "bearer":
        token = rest.strip()
    return token if token.startswith(KEY_PREFIX) else None


class UsageStamps:
    """Records a key's last use at most once per ``interval_s`` (Trio's clock) per key."""

    def __init__(
        self,
        keys: ApiKeyStore,
        interval_s: float = STAMP_INTERVAL_S,
        now: Callable[[], float] = trio.current_time,
    ) -> None:
        self._keys = keys
        self._interval_s = interval_s
        self._now = now
        self._stamped: dict[str, float] = {}  # key id -> when its use was last written

    async def used(self, key_id: str) -> None:
        moment = self._now()
        last = self._stamped.get(key_id)
        if last is not None and moment - last < self._interval_s:
            return
        self._stamped[key_id] = moment
        if len(self._stamped) > 100_000:  # forget the stalest half rather than grow forever
            for stale in sorted(self._stamped, key=self._stamped.__getitem__)[:50_000]:
                del self._stamped[stale]
        await self._keys.record_use({key_id: wall_ms()})


MAX_HOLDERS = 100_000


@dataclass
class KeyAuth:
    """What a request needs to authenticate with a key (one per app)."""

    keys: ApiKeyStore
    stamps: UsageStamps
    # key hash -> its user, for keys this process has verified: lets the rate limits count
    # a key's requests against its user before the route reads the key (never an
    # authentication: the route still reads the key, so revocation stays immediate).
    holders: OrderedDict[str, str] = field(default_factory=OrderedDict)

    def holder(self, key: str) -> str | None:
        """The user of a key verified here before, else None (no database read)."""
        return self.holders.get(key_hash(key))

    async def verify(self, key: str) -> tuple[Principal, User]:
        """The key's holder; 401 in the envelope when the key is unknown, revoked, or its
        account is disabled or banned."""
        digest = key_hash(key)
        found = await self.keys.by_hash(digest)
        if found is None:
            raise ApiError(401, "INVALID_API_KEY", "This API key is not valid.")
        api_key, user = found
        if api_key.revoked_at is not None:
            raise ApiError(401, "API_KEY_REVOKED", "This API key has been revoked.")
        try:
            usable(user)
        except Refused as refused:
            raise ApiError(401, refused.code, refused.message) from None
        await self.stamps.used(api_key.id)
        self.holders[digest] = user.id
        self.holders.move_to_end(digest)
        if len(self.holders) > MAX_HOLDERS:
            self.holders.popitem(last=False)
        return Principal(user.id, user.username, api_key.id, NEVER_MS), user


def _auth() -> KeyAuth:
    """The app's key auth (installed by the ``api_keys`` blueprint)."""
    auth: KeyAuth = current_app.extensions[KEY_AUTH]
    return auth


async def verify_key(key: str) -> tuple[Principal, User]:
    return await _auth().verify(key)


def holder_of(header: str | None) -> str | None:
    """The user whose key (verified here before) this Authorization header carries."""
    key = bearer_key(header)
    return _auth().holder(key) if key is not None else None
