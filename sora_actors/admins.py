"""The first administrator, and accounts changed from the command line.

An operator needs an ADMIN before the admin API can be used at all: either
``SORA_ADMIN_USERNAME`` + ``SORA_ADMIN_PASSWORD`` at server start (created when no user of
that name exists, never changed afterwards: the settings are a seed, not the source of
truth), or ``sora-actors users create --admin`` (`cli/users.py`). Both write through the
same storage units as the API, so a change made here reaches running servers like any
other (see `control.py`).
"""

from __future__ import annotations

import logging

import bcrypt
import trio

from .settings import Settings
from .storage import Activity, Conflict, Storage, User

log = logging.getLogger("sora_actors.admins")


async def hash_password(password: str, rounds: int) -> str:
    """bcrypt, off the event loop (no admission gate: one at a time here)."""
    secret = password.encode()
    hashed = await trio.to_thread.run_sync(lambda: bcrypt.hashpw(secret, bcrypt.gensalt(rounds)))
    return hashed.decode()


async def ensure_admin(settings: Settings, storage: Storage) -> User | None:
    """Create the configured first admin if no user of that name exists yet."""
    username, password = settings.admin_username, settings.admin_password
    if not (username and password):
        return None
    if await storage.accounts.by_username(username) is not None:
        return None
    password_hash = await hash_password(password, settings.bcrypt_rounds)
    try:
        user = await storage.accounts.create_user(
            username,
            None,
            password_hash,
            Activity("admin_user_create", details={"by": "SORA_ADMIN_USERNAME"}),
            role="ADMIN",
        )
    except Conflict:  # another instance created it at the same moment
        return None
    log.info("created the administrator %r from SORA_ADMIN_USERNAME", username)
    return user
