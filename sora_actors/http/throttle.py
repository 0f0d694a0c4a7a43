"""Throttling of password guessing: per client address and per account, with lockouts.

The rules (README, "Login throttling"):

- An attempt is counted *before* its password is checked: it takes a place at once, with
  no checkpoint between the check and the count, so concurrent guesses cannot all slip
  through. A place is given back when the password was right or was never checked (the
  server was busy, the database was down); a wrong password keeps it as a failure.
- An address may fail ``max_failures`` times within ``window`` seconds; an account (the
  username tried, whether it exists or not) ``account_max_failures`` times, from any
  addresses. Reaching either locks that address or account out for ``lockout`` seconds,
  doubling with each further lockout up to ``lockout_max``; a key that stays quiet for
  ``lockout_max`` after its last lockout starts over at ``lockout``.
- While locked out, every attempt is refused without looking at the password, a correct
  one too: otherwise the lockout would still answer the attacker's guesses. A correct
  password never wipes earlier failures either (an attacker with an account of their own
  could otherwise reset their address between guesses). The cost for the owner of an
  attacked account is a lockout that is bounded by ``lockout_max``, never permanent.

Memory is bounded (``max_keys`` per scope, least recently used forgotten first). Times
come from Trio's clock, so tests run it in virtual time.
"""

from __future__ import annotations

import math
import unicodedata
from collections import OrderedDict, deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import trio

from .ratelimit import too_many

# Refused while earlier attempts of the key are still being checked: they decide soon.
IN_FLIGHT_RETRY_SECONDS = 1.0


@dataclass
class _Record:
    failures: deque[float] = field(default_factory=deque)
    in_flight: int = 0
    strikes: int = 0
    locked_until: float = -math.inf


class _Scope:
    """Failures and lockouts of one kind of key (addresses, or accounts)."""

    def __init__(
        self, max_failures: int, window: float, lockout: float, lockout_max: float, max_keys: int
    ) -> None:
        self._max = max_failures
        self._window = window
        self._lockout = lockout
        self._lockout_max = lockout_max
        self._max_keys = max_keys
        self._records: OrderedDict[str, _Record] = OrderedDict()

    def __len__(self) -> int:
        return len(self._records)

    def _record(self, key: str, now: float) -> _Record:
        record = self._records.get(key)
        if record is None:
            record = self._records[key] = _Record()
            while len(self._records) > self._max_keys:
                self._records.popitem(last=False)
        self._records.move_to_end(key)
        while record.failures and record.failures[0] <= now - self._window:
            record.failures.popleft()
        if record.strikes and now >= record.locked_until + self._lockout_max:
            record.strikes = 0  # quiet long enough: the next lockout is short again
        return record

    def _tidy(self, key: str, record: _Record, now: float) -> None:
        idle = not record.failures and not record.in_flight and not record.strikes
        if idle and now >= record.locked_until:
            self._records.pop(key, None)

    def refusal(self, key: str, now: float) -> float | None:
        """Seconds to wait when the key may not try now, else None."""
        record = self._record(key, now)
        if now < record.locked_until:
            return record.locked_until - now
        if len(record.failures) + record.in_flight >= self._max:
            return IN_FLIGHT_RETRY_SECONDS  # only attempts in flight can fill the budget
        self._tidy(key, record, now)
        return None

    def take(self, key: str, now: float) -> None:
        self._record(key, now).in_flight += 1

    def give_back(self, key: str, now: float) -> None:
        record = self._record(key, now)
        record.in_flight = max(0, record.in_flight - 1)
        self._tidy(key, record, now)

    def fail(self, key: str, now: float) -> None:
        record = self._record(key, now)
        record.in_flight = max(0, record.in_flight - 1)
        record.failures.append(now)
        if len(record.failures) >= self._max:
            record.strikes += 1
            length = min(self._lockout * 2 ** (record.strikes - 1), self._lockout_max)
            record.locked_until = now + length
            record.failures.clear()


def account_key(username: str) -> str:
    """One key per account however its name is spelt (case, compatibility forms)."""
    return unicodedata.normalize("NFKC", username).strip().casefold()


class LoginAttempt:
    """One counted attempt; `failed` keeps it as a failure, otherwise it is given back."""

    def __init__(self, throttle: LoginThrottle, address: str, account: str) -> None:
        self._throttle = throttle
        self._address = address
        self._account = account
        self._open = True

    def failed(self) -> None:
        if self._open:
            self._open = False
            now = trio.current_time()
            self._throttle.addresses.fail(self._address, now)
            self._throttle.accounts.fail(self._account, now)

    def _give_back(self) -> None:
        if self._open:
            self._open = False
            now = trio.current_time()
            self._throttle.addresses.give_back(self._address, now)
            self._throttle.accounts.give_back(self._account, now)


class LoginThrottle:
    """Counts login attempts per address and per account before they are checked."""

    def __init__(
        self,
        max_failures: int,
        window: float,
        *,
        account_max_failures: int | None = None,
        lockout: float | None = None,
        lockout_max: float | None = None,
        max_keys: int = 100_000,
    ) -> None:
        lockout = window if lockout is None else lockout
        lockout_max = lockout if lockout_max is None else max(lockout, lockout_max)
        self.addresses = _Scope(max_failures, window, lockout, lockout_max, max_keys)
        self.accounts = _Scope(
            account_max_failures or max_failures, window, lockout, lockout_max, max_keys
        )

    @contextmanager
    def attempt(self, address: str, username: str) -> Iterator[LoginAttempt]:
        """Count an attempt (429 ``TOO_MANY_LOGIN_ATTEMPTS`` when refused) for the body.

        Call `LoginAttempt.failed` on a wrong password; on a right one, or when the body
        ends before the password was judged, the place is given back.
        """
        now = trio.current_time()
        account = account_key(username)
        waits = [
            wait
            for wait in (self.addresses.refusal(address, now), self.accounts.refusal(account, now))
            if wait is not None
        ]
        if waits:
            raise too_many("TOO_MANY_LOGIN_ATTEMPTS", "Too many failed logins", max(waits))
        self.addresses.take(address, now)
        self.accounts.take(account, now)
        attempt = LoginAttempt(self, address, account)
        try:
            yield attempt
        finally:
            attempt._give_back()
