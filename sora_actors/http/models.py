"""Request and response bodies (pydantic), camelCase on the wire.

quart-schema validates requests with these and builds the OpenAPI document from them.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from .security import BCRYPT_MAX_BYTES

# Checked with fullmatch (``$`` would also match before a trailing newline).
_USERNAME = re.compile(r"[A-Za-z0-9_.\-]{3,32}")
_EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}")
USERNAME_RULE = (
    "3 to 32 characters after NFKC normalisation, each an ASCII letter, digit, '_', '.' or "
    "'-' (no spaces, control, invisible or look-alike characters)"
)


def normal_username(value: str) -> str:
    """A username as stored and looked up: NFKC (full-width letters become ASCII ones).

    The rule checked after it is ASCII on purpose: letters of other scripts can look exactly
    like Latin ones (a Cyrillic "a" in "alice"), and zero-width, bidi and control characters
    make two different names look the same; none of them can pass.
    """
    return unicodedata.normalize("NFKC", value)


def _nonblank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value.strip()


class Wire(BaseModel):
    """Base of every body: camelCase aliases, unknown request fields ignored, and no NUL
    characters in any text (PostgreSQL cannot store them; nobody means them)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    @field_validator("*")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        """Per field, so that every offending field is named, not only the first."""
        return _no_nul_text(value) if isinstance(value, str) else value


def _no_nul_text(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


# A video prompt, wherever one is accepted (create, remix): 1..4000 characters, not blank,
# stored stripped.
Prompt = Annotated[
    str,
    Field(min_length=1, max_length=4000, json_schema_extra={"pattern": r"\S"}),
    AfterValidator(_nonblank),
    AfterValidator(_no_nul_text),
]


def _optional_email(value: str | None) -> str | None:
    if value is None or value.strip() == "":
        return None
    value = value.strip()
    if len(value) > 254 or not _EMAIL.fullmatch(value):
        raise ValueError("not a valid email address")
    return value


def _check_password(value: str) -> str:
    if len(value.encode()) > BCRYPT_MAX_BYTES:
        raise ValueError(f"must be at most {BCRYPT_MAX_BYTES} bytes in UTF-8")
    return value


class RegisterRequest(Wire):
    # The patterns are checked by the validators below; here they document the rules.
    username: str = Field(
        description=f"{USERNAME_RULE}; unique regardless of case",
        json_schema_extra={"pattern": f"^{_USERNAME.pattern}$"},
    )
    email: str | None = Field(default=None, json_schema_extra={"pattern": f"^{_EMAIL.pattern}$"})
    password: str = Field(min_length=6)

    @field_validator("username")
    @classmethod
    def _username(cls, value: str) -> str:
        value = normal_username(value)
        if not _USERNAME.fullmatch(value):
            raise ValueError(USERNAME_RULE)
        return value

    @field_validator("email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        return _optional_email(value)

    _password = field_validator("password")(_check_password)


class LoginRequest(Wire):
    username: str = Field(
        min_length=1,
        max_length=254,
        description="NFKC-normalised like at registration; not a valid username: 400",
    )
    password: str = Field(min_length=1)

    @field_validator("username")
    @classmethod
    def _username(cls, value: str) -> str:
        value = normal_username(value)
        if not _USERNAME.fullmatch(value):
            raise ValueError(f"not a valid username: {USERNAME_RULE}")
        return value

    _password = field_validator("password")(_check_password)


class UserOut(Wire):
    id: str
    username: str
    email: str | None
    role: str = Field(description="USER or ADMIN")


class MeOut(UserOut):
    is_active: bool
    last_login: str | None
    created_at: str | None


class LoginOut(Wire):
    token: str
    user: UserOut
    expires_at: int = Field(description="Unix milliseconds")


class VerifyOut(Wire):
    valid: bool
    user: MeOut


class LogoutOut(Wire):
    session_id: str
    revoked: bool


Role = Literal["USER", "ADMIN"]


class AdminCreateUserRequest(RegisterRequest):
    role: Role = "USER"


class AdminUpdateUserRequest(Wire):
    """Only the fields given change; ``email: null`` removes the address."""

    email: str | None = Field(default=None, json_schema_extra={"pattern": f"^{_EMAIL.pattern}$"})
    role: Role | None = None
    is_active: bool | None = None
    password: str | None = Field(default=None, min_length=6, description="a password reset")

    @field_validator("email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        return _optional_email(value)

    @field_validator("password")
    @classmethod
    def _password(cls, value: str | None) -> str | None:
        return None if value is None else _check_password(value)


class BanRequest(Wire):
    banned: bool
