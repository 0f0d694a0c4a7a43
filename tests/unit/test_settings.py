from __future__ import annotations

import json
from pathlib import Path

import pytest

from sora_actors.settings import DEFAULTS_FILE, SettingsError, load


def test_defaults_need_no_configuration() -> None:
    settings = load(environ={})
    assert settings.port == 3001 and settings.host == "127.0.0.1"
    assert settings.resolved_database_url.startswith("sqlite+aiosqlite:///")
    assert settings.resolved_database_url.endswith("/data/sora.db")
    assert settings.jwt_secret_generated and len(settings.jwt_secret) >= 32


def test_environment_overrides_and_is_validated() -> None:
    settings = load(
        environ={"SORA_PORT": "8080", "SORA_CORS_ORIGINS": "https://a.io, https://b.io"}
    )
    assert settings.port == 8080
    assert settings.cors_origins == ("https://a.io", "https://b.io")
    with pytest.raises(SettingsError, match=r"^invalid setting SORA_PORT='abc'"):
        load(environ={"SORA_PORT": "abc"})
    with pytest.raises(SettingsError, match="SORA_DATABASE_URL"):
        load(environ={"SORA_DATABASE_URL": "mysql://x"})
    with pytest.raises(SettingsError, match="SORA_ENV"):
        load(environ={"SORA_ENV": "staging"})


def test_production_needs_a_real_secret() -> None:
    with pytest.raises(SettingsError, match="SORA_JWT_SECRET must be set"):
        load(environ={"SORA_ENV": "production"})
    with pytest.raises(SettingsError, match="at least 32"):
        load(environ={"SORA_ENV": "production", "SORA_JWT_SECRET": "short"})
    settings = load(environ={"SORA_ENV": "production", "SORA_JWT_SECRET": "s" * 40})
    assert not settings.jwt_secret_generated


def test_cors_defaults() -> None:
    dev = load(environ={})
    assert dev.allows_origin("null")
    assert dev.allows_origin("http://localhost:5173")
    assert not dev.allows_origin("http://localhost.evil.io")
    assert not dev.allows_origin("https://example.com")
    prod = load(environ={"SORA_ENV": "production", "SORA_JWT_SECRET": "s" * 40})
    assert not prod.allows_origin("null")
    anyone = load(environ={"SORA_CORS_ORIGINS": "*"})
    assert anyone.allows_origin("https://example.com")


def test_a_settings_file_layers_under_the_environment(tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "extra.toml"
    path.write_text('port = 4000\nhost = "0.0.0.0"\n')
    settings = load(environ={"SORA_CONFIG_FILE": str(path), "SORA_PORT": "4001"})
    assert settings.host == "0.0.0.0" and settings.port == 4001
    path.write_text("no_such_key = 1\n")
    with pytest.raises(SettingsError, match="no_such_key"):
        load(environ={"SORA_CONFIG_FILE": str(path)})


def test_a_wrong_database_url_is_named_without_its_password() -> None:
    with pytest.raises(SettingsError) as raised:
        load(environ={"SORA_DATABASE_URL": "postgres://u:Secret@h/db"})
    assert str(raised.value) == (
        "invalid setting SORA_DATABASE_URL='postgres://u:[REDACTED]@h/db': Value error, "
        "must start with sqlite+aiosqlite:// or postgresql+asyncpg://"
    )


def test_the_package_carries_the_documented_defaults() -> None:
    """``sora_actors/defaults.toml`` (what an installed wheel reads) is config/default.toml."""
    documented = Path(__file__).resolve().parents[2] / "config" / "default.toml"
    assert DEFAULTS_FILE.read_bytes() == documented.read_bytes()


def test_polling_and_webhook_settings() -> None:
    settings = load(environ={})
    assert settings.polling_policy == "predictive" and settings.upstream_webhook_secret == ""
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    chosen = load(environ={"SORA_POLLING_POLICY": "seed", "SORA_UPSTREAM_WEBHOOK_SECRET": secret})
    assert chosen.polling_policy == "seed" and chosen.upstream_webhook_secret == secret
    with pytest.raises(SettingsError, match="SORA_POLLING_POLICY"):
        load(environ={"SORA_POLLING_POLICY": "eager"})
    with pytest.raises(SettingsError, match="SORA_UPSTREAM_WEBHOOK_SECRET") as refused:
        load(environ={"SORA_UPSTREAM_WEBHOOK_SECRET": "whsec_not base64 at all"})
    assert "not base64" not in str(refused.value)  # the value itself is never shown


def test_a_channels_webhook_secret_is_checked_and_never_echoed() -> None:
    channel = {"name": "gw", "base_url": "http://gw.example", "api_keys": ["k-1"]}
    good = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    loaded = load(environ={"SORA_CHANNELS": json.dumps([{**channel, "webhook_secret": good}])})
    assert loaded.channels[0].webhook_secret == good
    bad = {**channel, "webhook_secret": "whsec_not base64 at all"}
    with pytest.raises(SettingsError, match="SORA_CHANNELS") as refused:
        load(environ={"SORA_CHANNELS": json.dumps([bad])})
    assert "not base64" not in str(refused.value)
