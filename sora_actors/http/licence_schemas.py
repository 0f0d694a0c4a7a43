"""What the licence, plan and admin-licence routes read and answer (pydantic models)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from ..settings import LICENSE_TYPES
from .models import MeOut, Wire
from .schemas import Ok, Out

LicenseType = Literal["TRIAL", "PRO", "ENTERPRISE"]
assert set(LicenseType.__args__) == set(LICENSE_TYPES)  # type: ignore[attr-defined]
LicenseStatus = Literal["UNUSED", "ACTIVE", "EXPIRED", "REVOKED"]
CheckStatus = Literal["VALID", "UNKNOWN", "EXPIRED", "REVOKED", "BOUND_ELSEWHERE"]
MAX_GENERATE = 1000
KEY_FIELD = Field(
    min_length=1, max_length=100, description="SORA-XXXXX-XXXXX-XXXXX-XXXXX-XXXXX (any case)"
)
DEVICE_FIELD = Field(default=None, min_length=1, max_length=200)


# -- requests -------------------------------------------------------------------------------


class ActivateRequest(Wire):
    license_key: str = KEY_FIELD
    device_id: str | None = DEVICE_FIELD


class ValidateRequest(Wire):
    license_key: str = KEY_FIELD
    device_id: str | None = DEVICE_FIELD


class GenerateRequest(Wire):
    type: LicenseType
    duration_days: int | None = Field(
        default=None,
        ge=1,
        le=36500,
        strict=True,
        description="Counted from activation; absent: the licence never expires",
    )
    count: int | None = Field(default=None, ge=1, le=MAX_GENERATE, strict=True)


class LicenseListQuery(BaseModel):
    page: int | None = Field(default=None, ge=1, le=1_000_000, description="1-based")
    page_size: int | None = Field(
        default=None, alias="pageSize", ge=1, le=100, description="default 20"
    )
    type: LicenseType | None = None
    status: LicenseStatus | None = None


# -- answers --------------------------------------------------------------------------------


class PlanOut(Out):
    """A plan; null for a count: no limit."""

    name: str
    max_running: int | None = Field(description="tasks not yet finished, at once")
    tasks_per_day: int | None = Field(description="created in the last 24 hours")
    tasks_per_30_days: int | None
    max_duration_seconds: int | None
    models: list[str] | Literal["*"]
    sizes: list[str] | Literal["*"]
    image_to_video: bool


class UsageOut(Out):
    running: int
    tasks_last_24_hours: int
    tasks_last_30_days: int


class LicenseOut(Out):
    """A licence as its user sees it: the key masked (SORA-…-ABCD)."""

    id: str
    license_key: str = Field(description="masked: the full key is shown once, at generation")
    type: LicenseType
    status: LicenseStatus
    device_id: str | None
    activated_at: str | None
    expires_at: str | None


class LicenseInfoOut(Out):
    license: LicenseOut | None = Field(
        description="the licence that gives the plan, else the caller's latest (or null)"
    )
    plan: PlanOut
    usage: UsageOut


class MeStandingOut(MeOut):
    """/api/auth/me: the account, its plan and what is used of it."""

    plan: PlanOut
    usage: UsageOut


class ValidateOut(Out):
    valid: bool
    status: CheckStatus


class LicenseUserOut(Out):
    username: str
    email: str | None


class AdminLicenseOut(Out):
    id: str
    license_key: str = Field(description="masked (SORA-…-ABCD)")
    type: LicenseType
    status: LicenseStatus
    user_id: str | None
    is_active: bool = Field(description="false once revoked")
    device_id: str | None
    features: list[str]
    duration_days: int | None
    activated_at: str | None
    expires_at: str | None
    created_at: str | None
    user: LicenseUserOut | None


class AdminLicensePage(Out):
    items: list[AdminLicenseOut]
    total: int
    page: int
    page_size: int


class GeneratedOut(Out):
    """New keys, shown this once (only their hashes are kept)."""

    type: LicenseType
    duration_days: int | None = Field(default=None, description="absent: never expires")
    count: int
    license_key: str | None = Field(default=None, description="when count is absent or 1")
    id: str | None = None
    license_keys: list[str] | None = Field(default=None, description="when count > 1")
    ids: list[str] | None = None


class LicenseInfoEnvelope(Ok[LicenseInfoOut]):
    pass


class MeStandingEnvelope(Ok[MeStandingOut]):
    pass


class ValidateEnvelope(Ok[ValidateOut]):
    pass


class AdminLicenseEnvelope(Ok[AdminLicenseOut]):
    pass


class AdminLicensePageEnvelope(Ok[AdminLicensePage]):
    pass


class GeneratedEnvelope(Ok[GeneratedOut]):
    pass
