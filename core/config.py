"""Configuration from the environment (and `.env`), validated once at start-up.

Development needs no configuration at all: with no DATABASE_URL or REDIS_URL the
embedded servers are used. Production refuses to start with development secrets.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

from dotenv import load_dotenv

DEV_SECRET_KEY = "dev-secret-key-not-for-production"
DEV_MASTER_KEY = "dev-master-key-not-for-production"


class ConfigError(RuntimeError):
    """The configuration cannot run the requested mode."""


def _env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def load_config(overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Build the Flask config dict from environment variables, then `overrides`."""
    load_dotenv(override=False)
    env = os.environ.get("POWERBUYER_ENV", "development")
    instance = Path(os.environ.get("POWERBUYER_INSTANCE", Path.cwd() / "instance")).resolve()
    config: dict[str, Any] = {
        "ENV_NAME": env,
        "INSTANCE_PATH": str(instance),
        "SECRET_KEY": os.environ.get("SECRET_KEY", DEV_SECRET_KEY),
        "MASTER_KEY": os.environ.get("MASTER_KEY", DEV_MASTER_KEY),
        # During a master-key rotation: the old key, accepted only to unwrap data keys
        # until `powerbuyer keys rotate` has re-wrapped them (docs/personal-data.md).
        "MASTER_KEY_PREVIOUS": os.environ.get("MASTER_KEY_PREVIOUS") or None,
        # The application's own connection. When its role may create roles, the app
        # derives a non-superuser login role from it and keeps this URL for admin work.
        "DATABASE_URL": os.environ.get("DATABASE_URL"),
        # Privileged connection for provisioning and migrations, when DATABASE_URL is
        # already the unprivileged application role.
        "DATABASE_ADMIN_URL": os.environ.get("DATABASE_ADMIN_URL"),
        "REDIS_URL": os.environ.get("REDIS_URL"),
        "SERVER_NAME": os.environ.get("SERVER_NAME", "localhost:5000"),
        "PREFERRED_URL_SCHEME": os.environ.get("PREFERRED_URL_SCHEME", "http"),
        "APP_DB_ROLE": os.environ.get("APP_DB_ROLE", "powerbuyer_app"),
        "DB_ROLE_PREFIX": os.environ.get("DB_ROLE_PREFIX", ""),
        "STRICT_PLUGINS": _env_bool("POWERBUYER_STRICT_PLUGINS"),
        "RQ_QUEUE_PREFIX": os.environ.get("RQ_QUEUE_PREFIX", "pb"),
        "JOB_HEARTBEAT_SECONDS": float(os.environ.get("JOB_HEARTBEAT_SECONDS", "2")),
        "JOB_ABANDONED_AFTER_SECONDS": float(os.environ.get("JOB_ABANDONED_AFTER_SECONDS", "30")),
        # Extra modules whose import registers job types (comma-separated; tests use it).
        "JOB_MODULES": os.environ.get("POWERBUYER_JOB_MODULES", ""),
        # API access tokens (core/security/jwt.py): the key version that signs, and
        # retired versions that still verify during a rotation (comma-separated).
        "JWT_KEY_VERSION": int(os.environ.get("JWT_KEY_VERSION", "1")),
        "JWT_RETIRED_KEY_VERSIONS": tuple(
            int(v) for v in os.environ.get("JWT_RETIRED_KEY_VERSIONS", "").split(",") if v.strip()
        ),
        "API_REFRESH_TOKEN_DAYS": int(os.environ.get("API_REFRESH_TOKEN_DAYS", "30")),
        "LOG_FORMAT": os.environ.get("LOG_FORMAT", "json" if env == "production" else "text"),
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": env == "production",
        # No pre-ping round trip: the pool looks at a connection's socket when handing it
        # out (core.db.check_connections_on_checkout). Recycling bounds the age of one
        # whose peer vanished silently, which no check short of a timeout notices.
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_recycle": 1800},
        "WTF_CSRF_TIME_LIMIT": None,
        # Flask-Security (password login; MFA and tokens come with the identity issue).
        "SECURITY_PASSWORD_HASH": "argon2",
        # One minimum for every way a password is set: signup, the CLI, Flask-Security.
        "SECURITY_PASSWORD_LENGTH_MIN": 12,
        "SECURITY_PASSWORD_SALT": os.environ.get("SECURITY_PASSWORD_SALT", "powerbuyer-dev-salt"),
        "SECURITY_EMAIL_VALIDATOR_ARGS": {"check_deliverability": False},
        "SECURITY_REGISTERABLE": False,
        "SECURITY_SEND_REGISTER_EMAIL": False,
        "SECURITY_POST_LOGIN_VIEW": "/",
        "SECURITY_POST_LOGOUT_VIEW": "/login",
        "SECURITY_LOGIN_URL": "/login",
        # Our template, in the app's layout (web/templates).
        "SECURITY_LOGIN_USER_TEMPLATE": "auth/login.html",
        "SECURITY_LOGOUT_URL": "/logout",
        "SECURITY_LOGOUT_METHODS": ["POST"],
        "SECURITY_CSRF_IGNORE_UNAUTH_ENDPOINTS": False,
        "SECURITY_FLASH_MESSAGES": True,
        "SECURITY_URL_PREFIX": None,
        # Identity (core/security/accounts.py, passwords.py, sessions.py, throttle.py).
        # Passwords: zxcvbn scores each against the common-password lists it ships.
        "SECURITY_PASSWORD_COMPLEXITY_CHECKER": "zxcvbn",
        "SECURITY_ZXCVBN_MINIMUM_SCORE": 3,
        "SECURITY_CHANGEABLE": True,
        "SECURITY_RECOVERABLE": True,
        "SECURITY_RESET_PASSWORD_WITHIN": timedelta(hours=2),
        "SECURITY_POST_CHANGE_VIEW": "/account",
        # Second factors: an authenticator app (TOTP) with recovery codes, and WebAuthn
        # security keys (as a second factor only). No rescue by email: an inbox must
        # not stand in for the second factor.
        "SECURITY_TWO_FACTOR": True,
        "SECURITY_TWO_FACTOR_ENABLED_METHODS": ["authenticator"],
        "SECURITY_TWO_FACTOR_RESCUE_EMAIL": False,
        "SECURITY_TOTP_ISSUER": "Power Buyer",
        # Screens sign in with a session only; Flask-Security's own auth tokens would be
        # a second, unregistered way in (the API has its own JWTs).
        "SECURITY_API_ENABLED_METHODS": ["session"],
        # Changing a second factor or recovery codes asks for the password again unless
        # the user signed in within the last 15 minutes.
        "SECURITY_FRESHNESS": timedelta(minutes=15),
        "SECURITY_FRESHNESS_GRACE_PERIOD": timedelta(minutes=0),
        "SECURITY_FRESHNESS_ALLOW_AUTH_TOKEN": False,
        # No MD5 fallback for old reset or confirmation tokens.
        "SECURITY_HASHING_SCHEMES": ["sha256_crypt"],
        "SECURITY_DEPRECATED_HASHING_SCHEMES": [],
        "SECURITY_MULTI_FACTOR_RECOVERY_CODES": True,
        "SECURITY_MULTI_FACTOR_RECOVERY_CODES_N": 8,
        "SECURITY_WEBAUTHN": True,
        "SECURITY_WAN_ALLOW_AS_FIRST_FACTOR": False,
        "SECURITY_WAN_ALLOW_AS_MULTI_FACTOR": True,
        "SECURITY_WAN_RP_NAME": "Power Buyer",
        # Failed sign-ins counted per client address and per account (Flask-Limiter).
        "LOGIN_RATE_LIMIT_PER_IP": os.environ.get("LOGIN_RATE_LIMIT_PER_IP", "50 per 10 minutes"),
        "LOGIN_RATE_LIMIT_PER_ACCOUNT": os.environ.get(
            "LOGIN_RATE_LIMIT_PER_ACCOUNT", "10 per 10 minutes"
        ),
        # Built-in plugins every tenant has (core/plugins.py): the default email channel.
        "PLUGINS_ALWAYS_ENABLED": ("notify_smtp",),
    }
    if overrides:
        config.update(overrides)
    _derive_security_keys(config)
    return config


def _derived(config: dict[str, Any], purpose: str) -> bytes:
    return hmac.new(config["MASTER_KEY"].encode(), purpose.encode(), hashlib.sha256).digest()


def _derive_security_keys(config: dict[str, Any]) -> None:
    """Keys Flask-Security encrypts second-factor secrets with, derived from MASTER_KEY
    so that no further secret has to be configured (and kept) for them."""
    config.setdefault("SECURITY_TOTP_SECRETS", {"1": _derived(config, "totp-secrets").hex()})
    config.setdefault(
        "SECURITY_MULTI_FACTOR_RECOVERY_CODES_KEYS",
        [base64.urlsafe_b64encode(_derived(config, "recovery-codes")).decode()],
    )


def check_production(config: dict[str, Any]) -> None:
    """Refuse to run production with development secrets or embedded servers."""
    if config["ENV_NAME"] != "production":
        return
    problems = []
    if config["SECRET_KEY"] in (DEV_SECRET_KEY, "", None):
        problems.append("SECRET_KEY is unset or the development value")
    if config["MASTER_KEY"] in (DEV_MASTER_KEY, "", None):
        problems.append("MASTER_KEY is unset or the development value")
    if config["SECURITY_PASSWORD_SALT"] == "powerbuyer-dev-salt":
        problems.append("SECURITY_PASSWORD_SALT is the development value")
    if not config["DATABASE_URL"]:
        problems.append("DATABASE_URL is required in production")
    if not config["REDIS_URL"]:
        problems.append("REDIS_URL is required in production")
    if problems:
        raise ConfigError("refusing to start in production: " + "; ".join(problems))
