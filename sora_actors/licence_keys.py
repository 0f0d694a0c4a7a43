"""Licence keys: made, read back, hashed and masked.

A key is ``SORA-XXXXX-XXXXX-XXXXX-XXXXX-XXXXX``: 25 random Crockford base32 characters,
125 bits, readable aloud and typed without I/L/O/U confusion. Only its SHA-256 is stored
(a salt or a slow hash buys nothing against 125 random bits; it would only slow the lookup),
so a copy of the database gives no usable key. The last four characters are kept to show
the key masked (``SORA-…-ABCD``): 105 bits stay unknown.
"""

from __future__ import annotations

import hashlib
import secrets

PREFIX = "SORA"
GROUPS = 5
GROUP_LENGTH = 5
LENGTH = GROUPS * GROUP_LENGTH
ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32: no I, L, O, U
# What people type for a character Crockford leaves out.
_READ_AS = str.maketrans({"I": "1", "L": "1", "O": "0"})
_SEPARATORS = str.maketrans("", "", "- \t")
VISIBLE = 4


class BadKey(ValueError):
    """Not something that could be a key (wrong length or characters)."""


def generate() -> str:
    """A new key, in its display form."""
    body = "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))
    groups = [body[i : i + GROUP_LENGTH] for i in range(0, LENGTH, GROUP_LENGTH)]
    return "-".join([PREFIX, *groups])


def normalise(text: str) -> str:
    """The 25 characters of a key however it was typed (case, spaces, dashes, I/L/O);
    BadKey when it cannot be one."""
    plain = text.strip().upper().translate(_SEPARATORS)
    if plain.startswith(PREFIX) and len(plain) == len(PREFIX) + LENGTH:
        plain = plain[len(PREFIX) :]
    plain = plain.translate(_READ_AS)
    if len(plain) != LENGTH or any(char not in ALPHABET for char in plain):
        raise BadKey(f"not a licence key (expected {PREFIX}-XXXXX-XXXXX-XXXXX-XXXXX-XXXXX)")
    return plain


def digest(text: str) -> str:
    """The stored form of a key: SHA-256 (hex) of its normalised characters."""
    return hashlib.sha256(normalise(text).encode()).hexdigest()


def last_four(text: str) -> str:
    return normalise(text)[-VISIBLE:]


def masked(last4: str) -> str:
    """How a key is shown after its generation: prefix and last four only."""
    return f"{PREFIX}-…-{last4}"
