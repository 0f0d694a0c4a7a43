"""Passwords (bcrypt, off the event loop) and login tokens (JWT HS256)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import bcrypt
import jwt
import trio

from ..clock import wall_ms
from .envelope import ApiError
from .gate import BusyGate

BCRYPT_MAX_BYTES = 72


class Passwords:
    """bcrypt hashing. A hash costs ~210 ms at cost 12, so it runs in a worker thread,
    admitted by ``gate`` (a few at once; beyond a short queue, 503 at once)."""

    def __init__(self, rounds: int, gate: BusyGate) -> None:
        self._rounds = rounds
        self._gate = gate
        # Verified against when the user does not exist, so that "no such user" takes as
        # long as "wrong password" and response times do not reveal which usernames exist.
        self._decoy = bcrypt.hashpw(b"decoy-password", bcrypt.gensalt(rounds)).decode()

    async def hash(self, password: str) -> str:
        secret = password.encode()
        if len(secret) > BCRYPT_MAX_BYTES:  # bcrypt 5 raises; never truncate silently
            raise ValueError("password longer than 72 bytes")
        async with self._gate.slot():
            hashed = await trio.to_thread.run_sync(
                lambda: bcrypt.hashpw(secret, bcrypt.gensalt(self._rounds))
            )
        return hashed.decode()

    async def verify(self, password: str, hashed: str | None) -> bool:
        secret = password.encode()
        target = (hashed or self._decoy).encode()
        if len(secret) > BCRYPT_MAX_BYTES:
            return False
        async with self._gate.slot():
            matches = await trio.to_thread.run_sync(lambda: bcrypt.checkpw(secret, target))
        return matches and hashed is not None


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling, as their token says."""

    user_id: str
    username: str
    session_id: str
    expires_at_ms: int


class TokenError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Tokens:
    """Issues and checks login tokens."""

    def __init__(self, secret: str, ttl_seconds: int) -> None:
        self._secret = secret
        self._ttl_ms = ttl_seconds * 1000

    def issue(self, user_id: str, username: str) -> tuple[str, Principal]:
        now = wall_ms()
        # JWT carries whole seconds: report exactly the expiry the token holds.
        expires_ms = (now + self._ttl_ms) // 1000 * 1000
        principal = Principal(user_id, username, uuid.uuid4().hex, expires_ms)
        claims = {
            "sub": user_id,
            "name": username,
            "sid": principal.session_id,
            "iat": now // 1000,
            "exp": principal.expires_at_ms // 1000,
        }
        return jwt.encode(claims, self._secret, algorithm="HS256"), principal

    def verify(self, token: str) -> Principal:
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=["HS256"],
                options={"require": ["sub", "exp", "sid"]},
            )
        except jwt.ExpiredSignatureError:
            raise TokenError("TOKEN_EXPIRED", "The token has expired; log in again.") from None
        except jwt.InvalidTokenError:
            raise TokenError("INVALID_TOKEN", "The token is not valid.") from None
        return Principal(
            user_id=str(claims["sub"]),
            username=str(claims.get("name", "")),
            session_id=str(claims["sid"]),
            expires_at_ms=int(claims["exp"]) * 1000,
        )

    def verify_header(self, header: str | None) -> Principal:
        """``Authorization: Bearer <jwt>``; a bare token is accepted too (old backend did)."""
        if not header or not header.strip():
            raise ApiError(401, "AUTH_REQUIRED", "Log in first: no Authorization header.")
        token = header.strip()
        scheme, _, rest = token.partition(" ")
        if rest and scheme.lower() == "bearer":
            token = rest.strip()
        try:
            return self.verify(token)
        except TokenError as error:
            raise ApiError(401, error.code, error.message) from None
