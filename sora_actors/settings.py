"""Settings: defaults from ``config/default.toml``, overridden by ``SORA_*`` variables.

The package carries those defaults as ``sora_actors/defaults.toml``, a link to
``config/default.toml`` (one file, two names): the wheel ships it as package data, so an
installed service finds its defaults wherever it is started from.

Why one flat namespace: a key in the TOML file, the environment variable that overrides it
and the attribute the code reads are the same word (``port`` / ``SORA_PORT`` /
``settings.port``), so operators never have to translate between three spellings.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import tomllib
from collections.abc import Mapping
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from .http.proxies import parse_networks
from .logs import redact
from .upstream.webhooks import secret_key

ENV_PREFIX = "SORA_"
DEFAULTS_FILE = resources.files(__package__).joinpath("defaults.toml")
MIN_SECRET_LENGTH = 32


class SettingsError(Exception):
    """A setting is missing or wrong; the message is one line naming it."""


class Plan(BaseModel):
    """What one plan allows (`plans.NAME.*` in the settings file). Counts of 0: no limit."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_running: int = Field(default=0, ge=0)  # tasks not yet in a terminal status
    tasks_per_day: int = Field(default=0, ge=0)  # created in the last 24 hours
    tasks_per_30_days: int = Field(default=0, ge=0)  # created in the last 30 days
    max_duration_seconds: int = Field(default=0, ge=0)
    models: tuple[str, ...] | Literal["*"] = "*"
    sizes: tuple[str, ...] | Literal["*"] = "*"
    image_to_video: bool = True


# Licence types (the admin API generates these); each needs a plan of the same name.
LICENSE_TYPES = ("TRIAL", "PRO", "ENTERPRISE")


class ChannelSettings(BaseModel):
    """One upstream channel (a ``[[channels]]`` entry): where, with which keys, for what.

    Empty ``models`` / ``sizes`` / ``durations``: serves any (durations are then mapped to
    the dialect's nearest allowed length). Keys are used in turn.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    dialect: Literal["openai", "replicate"] = "openai"
    base_url: str
    api_keys: tuple[str, ...] = Field(min_length=1)
    auth_style: Literal["bearer", "bare", "x-api-key", "token"] = "bearer"
    model_map: dict[str, str] = Field(default_factory=dict)
    models: tuple[str, ...] = ()
    sizes: tuple[str, ...] = ()
    durations: tuple[int, ...] = ()
    priority: int = 0
    weight: float = Field(default=1.0, gt=0)
    max_concurrent_jobs: int = Field(default=50, gt=0)
    max_requests_per_second: float = Field(default=10.0, gt=0)
    enabled: bool = True
    # Standard Webhooks secret ("whsec_...") the channel signs its callbacks with, if any.
    webhook_secret: str = ""

    @field_validator("api_keys", mode="before")
    @classmethod
    def _one_key(cls, value: Any) -> Any:
        return (value,) if isinstance(value, str) else value

    @field_validator("webhook_secret")
    @classmethod
    def _webhook_secret(cls, value: str) -> str:
        if value:
            secret_key(value)  # ValueError says what is wrong, never the secret
        return value

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value


class Settings(BaseModel):
    """Validated configuration of one process."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    env: Literal["development", "production"] = "development"
    host: str = "127.0.0.1"
    port: int = Field(default=3001, ge=0, le=65535)
    data_dir: Path = Path("./data")
    database_url: str = ""
    jwt_secret: str = ""
    jwt_ttl_seconds: int = Field(default=604800, gt=0)
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
    sse_heartbeat_seconds: float = Field(default=15.0, gt=0)
    gc_freeze_seconds: float = Field(default=0.5, ge=0)
    gc_major_growth: float = Field(default=2.0, gt=1)
    session_cache_seconds: float = Field(default=1.0, ge=0)
    admin_username: str = ""
    admin_password: str = ""
    polling_policy: Literal["predictive", "seed"] = "predictive"
    upstream_webhook_secret: str = ""
    plans: dict[str, Plan] = Field(default_factory=dict)
    default_plan: str = "FREE"
    license_checks_per_address: int = Field(default=20, ge=0)
    license_checks_period_seconds: float = Field(default=60.0, gt=0)
    # Upstream channels ([[channels]] in a settings file, or JSON in SORA_CHANNELS). Empty:
    # one channel named "default" from the upstream_* settings (or the simulator).
    channels: tuple[ChannelSettings, ...] = ()
    channel_failure_threshold: int = Field(default=5, gt=0)
    channel_cooldown_seconds: float = Field(default=5.0, gt=0)
    channel_cooldown_max_seconds: float = Field(default=300.0, gt=0)
    config_refresh_seconds: float = Field(default=1.0, gt=0)
    api_keys_per_user: int = Field(default=20, gt=0)
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

    @field_validator("plans", mode="before")
    @classmethod
    def _plans_json(cls, value: Any) -> Any:
        """SORA_PLANS holds JSON (``{"FREE": {"max_running": 1}}``)."""
        return json.loads(value) if isinstance(value, str) else value

    @field_validator("default_plan")
    @classmethod
    def _every_plan_named(cls, value: str, info: ValidationInfo) -> str:
        """The default plan and every licence type must name a configured plan."""
        plans = info.data.get("plans")
        if plans is not None:
            for name in (*LICENSE_TYPES, value):
                if name not in plans:
                    raise ValueError(f"no plan named {name!r} in plans")
        return value

    @field_validator("channels", mode="before")
    @classmethod
    def _channels_json(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return json.loads(value) if value.strip() else ()
            except ValueError as error:
                raise ValueError(f"not a JSON array of channels: {error}") from None
        return value

    @field_validator("channels")
    @classmethod
    def _unique_names(cls, value: tuple[ChannelSettings, ...]) -> tuple[ChannelSettings, ...]:
        names = [channel.name for channel in value]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ValueError(f"channel name {twice[0]!r} is used twice")
        return value

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        if value and not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("must start with sqlite+aiosqlite:// or postgresql+asyncpg://")
        return value

    @field_validator("upstream_webhook_secret")
    @classmethod
    def _webhook_secret(cls, value: str) -> str:
        if value:
            secret_key(value)  # ValueError says what is wrong
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


def _env_plans(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as error:
        raise SettingsError(f"invalid setting {ENV_PREFIX}PLANS: not JSON ({error})") from None


def _layer(values: dict[str, Any], layer: Mapping[str, Any]) -> None:
    """``layer`` over ``values``; plans merge plan by plan and field by field, so that a
    file (or SORA_PLANS) may change one limit of one plan and keep the rest."""
    for key, value in layer.items():
        if key == "plans" and isinstance(value, Mapping) and isinstance(values.get(key), dict):
            merged = dict(values[key])
            for name, plan in value.items():
                base = merged.get(name)
                both = isinstance(base, Mapping) and isinstance(plan, Mapping)
                merged[name] = {**base, **plan} if both else plan  # type: ignore[dict-item]
            values[key] = merged
        else:
            values[key] = value


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
        _layer(values, _read_toml(Path(extra_file)))
    known = set(Settings.model_fields) - {"jwt_secret_generated"}
    for key in known:
        env_value = environ.get(ENV_PREFIX + key.upper())
        if env_value is not None:
            _layer(values, {key: _env_plans(env_value) if key == "plans" else env_value})
    unknown = sorted(set(values) - known)
    if unknown:
        raise SettingsError(f"unknown setting {unknown[0]!r} in a settings file")
    _layer(values, overrides or {})
    try:
        settings = Settings(**values)
    except ValidationError as error:
        first = error.errors()[0]
        key = str(first["loc"][0]) if first["loc"] else "?"
        # redact(): the value may be a URL with a password in it; channels hold API keys,
        # so for them only where the fault is is named.
        got = redact(repr(values.get(key, "")))
        if key.endswith("_secret"):
            got = "(hidden)"  # never a secret, even a malformed one, in a log line
        if key == "channels":
            got = "[...] at " + ".".join(str(part) for part in first["loc"][1:])
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
