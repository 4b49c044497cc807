"""Configuration: development needs none, production refuses development secrets."""

from __future__ import annotations

import pytest

from core.config import DEV_MASTER_KEY, DEV_SECRET_KEY, ConfigError, check_production, load_config

PRODUCTION = {
    "ENV_NAME": "production",
    "SECRET_KEY": "s" * 40,
    "MASTER_KEY": "m" * 40,
    "SECURITY_PASSWORD_SALT": "salt-" * 8,
    "DATABASE_URL": "postgresql://app@db/powerbuyer",
    "REDIS_URL": "redis://cache:6379/0",
}


def test_development_defaults_need_no_configuration(monkeypatch):
    for name in ("DATABASE_URL", "REDIS_URL", "SECRET_KEY", "POWERBUYER_ENV"):
        monkeypatch.delenv(name, raising=False)
    config = load_config()
    assert config["ENV_NAME"] == "development"
    assert config["DATABASE_URL"] is None  # the embedded server will be used
    check_production(config)  # not production: nothing to refuse


def test_production_with_real_secrets_starts():
    check_production(load_config(PRODUCTION))


@pytest.mark.parametrize(
    ("key", "value", "named"),
    [
        ("SECRET_KEY", DEV_SECRET_KEY, "SECRET_KEY"),
        ("MASTER_KEY", DEV_MASTER_KEY, "MASTER_KEY"),
        ("SECURITY_PASSWORD_SALT", "powerbuyer-dev-salt", "SECURITY_PASSWORD_SALT"),
        ("DATABASE_URL", None, "DATABASE_URL"),
        ("REDIS_URL", None, "REDIS_URL"),
    ],
)
def test_production_refuses_development_values(key, value, named):
    with pytest.raises(ConfigError, match=named):
        check_production(load_config({**PRODUCTION, key: value}))


def test_environment_variables_are_read(monkeypatch):
    monkeypatch.setenv("SERVER_NAME", "brokers.example.com")
    monkeypatch.setenv("POWERBUYER_STRICT_PLUGINS", "1")
    config = load_config()
    assert config["SERVER_NAME"] == "brokers.example.com"
    assert config["STRICT_PLUGINS"] is True
