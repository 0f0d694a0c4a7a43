"""Settings: defaults from ``config/default.toml``, overridden by ``SORA_*`` variables.

The package carries those defaults as ``sora_actors/defaults.toml``, a link to
``config/default.toml`` (one file, two names): the wheel ships it as package data, so an
installed service finds its defaults wherever it is started from.

Why one flat namespace: a key in the TOML file, the environment variable that overrides it
and the attribute the code reads are the same word (``port`` / ``SORA_PORT`` /
``settings.port``), so operators never have to translate between three spellings.
"""

from __future__ import annotations

import os
import secrets
import socket
import tomllib
from collections.abc import Mapping
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .http.proxies import parse_networks
from .logs import redact

ENV_PREFIX = "SORA_"
DEFAULTS_FILE = resources.files(__package__).joinpath("defaults.toml")
MIN_SECRET_LENGTH = 32


class SettingsError(Exception):
    """A setting is missing or wrong; the message is one line naming it."""


class Settings(BaseModel):
    """Validated configuration of one process."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    env: Literal["development", "production"] = "development"
    host: str = "127.0.0.1"
    port: int = Field(default=3001, ge=0, le=65535)
    data_dir: Path = Path("./data")
    database_url: str = ""
    jwt_secret: str = ""
    jwt_ttl_seconds: int = Field(default=86400, gt=0)
    max_body_bytes: int = Field(default=16 * 1024 * 1024, gt=0)
    max_json_body_bytes: int = Field(default=1024 * 1024, gt=0)
    max_image_bytes: int = Field(default=10 * 1024 * 1024, gt=0)
    max_json_depth: int = Field(default=32, ge=2, le=200)
    cors_origins: tuple[str, ...] = ()
    bcrypt_rounds: int = Field(default=12, ge=4, le=16)
    login_max_failures: int = Field(default=5, gt=0)
    login_window_seconds: float = Field(default=300.0, gt=0)
    login_account_max_failures: int = Field(default=10, gt=0)
    login_lockout_seconds: float = Field(default=60.0, gt=0)
    login_lockout_max_seconds: float = Field(default=3600.0, gt=0)
    password_hash_concurrency: int = Field(default=0, ge=0)
    password_hash_queue: int = Field(default=8, ge=0)
    register_max_per_address: int = Field(default=10, ge=0)
    register_window_seconds: float = Field(default=3600.0, gt=0)
    trusted_proxies: tuple[str, ...] = ()
    rate_limit_period_seconds: float = Field(default=60.0, gt=0)
    rate_limit_create_per_user: int = Field(default=120, ge=0)
    rate_limit_create_per_address: int = Field(default=240, ge=0)
    rate_limit_read_per_user: int = Field(default=1200, ge=0)
    rate_limit_read_per_address: int = Field(default=2400, ge=0)
    rate_limit_instances: int = Field(default=1, gt=0)
    shutdown_grace_seconds: float = Field(default=10.0, ge=0)
    max_connections: int = Field(default=0, ge=0)
    header_timeout_seconds: float = Field(default=10.0, gt=0)
    keep_alive_seconds: float = Field(default=75.0, gt=0)
    send_timeout_seconds: float = Field(default=30.0, gt=0)
    upstream_url: str = ""
    upstream_api_key: str = ""
    upstream_auth_style: Literal["bearer", "bare"] = "bearer"
    upstream_timeout_seconds: float = Field(default=30.0, gt=0)
    upstream_max_requests_per_second: float = Field(default=10.0, gt=0)
    upstream_max_concurrent_jobs: int = Field(default=50, gt=0)
    simulator_time_scale: float = Field(default=1.0, gt=0)
    polling_speedup: float = Field(default=1.0, gt=0)
    instance_id: str = ""
    lease_seconds: float = Field(default=10.0, gt=0)
    lease_heartbeat_seconds: float = Field(default=3.0, gt=0)
    claim_interval_seconds: float = Field(default=2.0, gt=0)
    task_deadline_seconds: float = Field(default=3600.0, gt=0)
    submit_settle_seconds: float = Field(default=60.0, ge=0)
    actor_max_restarts: int = Field(default=5, ge=0)
    actor_restart_period_seconds: float = Field(default=60.0, gt=0)
    content_dir: str = ""
    content_url_secret: str = ""
    content_url_ttl_seconds: int = Field(default=3600, gt=0)
    content_retention_days: float = Field(default=30.0, ge=0)
    content_sweep_interval_seconds: float = Field(default=3600.0, gt=0)
    content_space_retry_seconds: float = Field(default=5.0, gt=0)
    content_space_retry_max_seconds: float = Field(default=300.0, gt=0)
    public_base_url: str = ""
    ws_auth_timeout_seconds: float = Field(default=10.0, gt=0)
    ws_heartbeat_seconds: float = Field(default=30.0, gt=0)
    ws_ping_seconds: float = Field(default=20.0, ge=0)
    ws_send_queue_size: int = Field(default=256, ge=4)
    ws_stuck_seconds: float = Field(default=30.0, gt=0)
    ws_max_message_bytes: int = Field(default=65536, ge=1024)
    ws_messages_per_second: float = Field(default=20.0, ge=0)
    ws_message_burst: int = Field(default=100, gt=0)
    ws_max_subscriptions_per_connection: int = Field(default=1000, gt=0)
    ws_max_subscriptions_per_user: int = Field(default=5000, gt=0)
    gc_freeze_seconds: float = Field(default=0.5, ge=0)
    gc_major_growth: float = Field(default=2.0, gt=1)
    session_cache_seconds: float = Field(default=1.0, ge=0)
    admin_username: str = ""
    admin_password: str = ""
    # Filled in by load(): True when jwt_secret was generated for this process only.
    jwt_secret_generated: bool = False

    @field_validator("cors_origins", "trusted_proxies", mode="before")
    @classmethod
    def _split_origins(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        parse_networks(value)  # ValueError names the bad entry
        return value

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        if value and not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("must start with sqlite+aiosqlite:// or postgresql+asyncpg://")
        return value

    @field_validator("public_base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @property
    def resolved_instance_id(self) -> str:
        """This process's name in task leases: the setting, else host and pid."""
        return self.instance_id or f"{socket.gethostname()}-{os.getpid()}"

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    @property
    def resolved_database_url(self) -> str:
        """The URL to open: the configured one, else a SQLite file under ``data_dir``."""
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'sora.db').resolve()}"

    @property
    def resolved_content_dir(self) -> Path:
        """Where local copies of videos live: the configured folder, else ``<data_dir>/content``."""
        return Path(self.content_dir) if self.content_dir else self.data_dir / "content"

    def allows_origin(self, origin: str) -> bool:
        """CORS: is this ``Origin`` header admitted?"""
        if self.cors_origins:
            return "*" in self.cors_origins or origin in self.cors_origins
        if self.is_production:
            return False
        # Development: the old test pages are opened from file:// (origin "null") and the
        # React dev server runs on localhost.
        if origin == "null":
            return True
        for prefix in ("http://localhost", "http://127.0.0.1", "http://[::1]"):
            if origin == prefix or origin.startswith(prefix + ":"):
                return True
        return False


def _read_toml(path: Traversable) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise SettingsError(f"settings file not found: {path}") from None
    except tomllib.TOMLDecodeError as error:
        raise SettingsError(f"settings file {path} is not valid TOML: {error}") from None


def load(
    environ: Mapping[str, str] | None = None, *, overrides: Mapping[str, Any] | None = None
) -> Settings:
    """Layer defaults, an optional file, the environment and explicit overrides; validate.

    Raises SettingsError with one line that names the first wrong setting.
    """
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = _read_toml(DEFAULTS_FILE)
    extra_file = environ.get(f"{ENV_PREFIX}CONFIG_FILE")
    if extra_file:
        values.update(_read_toml(Path(extra_file)))
    known = set(Settings.model_fields) - {"jwt_secret_generated"}
    for key in known:
        env_value = environ.get(ENV_PREFIX + key.upper())
        if env_value is not None:
            values[key] = env_value
    unknown = sorted(set(values) - known)
    if unknown:
        raise SettingsError(f"unknown setting {unknown[0]!r} in a settings file")
    values.update(overrides or {})
    try:
        settings = Settings(**values)
    except ValidationError as error:
        first = error.errors()[0]
        key = str(first["loc"][0]) if first["loc"] else "?"
        # redact(): the value may be a URL with a password in it.
        got = redact(repr(values.get(key, "")))
        raise SettingsError(
            f"invalid setting {ENV_PREFIX}{key.upper()}={got}: {first['msg']}"
        ) from None
    return _finish_secret(settings)


def _finish_secret(settings: Settings) -> Settings:
    if settings.jwt_secret:
        if len(settings.jwt_secret) < MIN_SECRET_LENGTH:
            raise SettingsError(
                f"invalid setting {ENV_PREFIX}JWT_SECRET: must be at least "
                f"{MIN_SECRET_LENGTH} characters"
            )
        return settings
    if settings.is_production:
        raise SettingsError(f"{ENV_PREFIX}JWT_SECRET must be set when {ENV_PREFIX}ENV=production")
    return settings.model_copy(
        update={"jwt_secret": secrets.token_urlsafe(48), "jwt_secret_generated": True}
    )
