"""Hardening found while mapping ASVS (docs/security.md): each closes one way in."""

from __future__ import annotations

import hashlib

from flask import Flask

from core.app import create_app
from tests.conftest import PASSWORD, host_client


def _signed_in(app: Flask):
    client = host_client(app, "alpha")
    response = client.post(
        "/login", data={"email": "admin@alpha.example.com", "password": PASSWORD}
    )
    assert response.status_code == 302
    return client


def test_flask_security_auth_tokens_are_not_a_way_in(app: Flask, alpha):
    client = host_client(app, "alpha")
    response = client.post(
        "/login?include_auth_token",
        json={"email": "admin@alpha.example.com", "password": PASSWORD},
    )
    body = response.get_json(silent=True) or {}
    token = body.get("response", {}).get("user", {}).get("authentication_token")
    assert token, "the library still mints one; what matters is that it opens nothing"
    stranger = host_client(app, "alpha")
    for attempt in (
        stranger.get("/", headers={"Authentication-Token": token}),
        stranger.get(f"/?auth_token={token}"),
    ):
        assert attempt.status_code == 302
        assert "/login" in attempt.headers["Location"]


def test_signed_in_screens_are_not_cached(app: Flask, alpha):
    response = _signed_in(app).get("/")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"


def test_session_cookies_are_signed_with_sha256(app: Flask):
    assert app.session_interface.digest_method is hashlib.sha256


def test_run_refuses_production(app_config: dict):
    production = create_app(
        {
            **app_config,
            "ENV_NAME": "production",
            "SECRET_KEY": "s" * 48,
            "MASTER_KEY": "m" * 48,
            "SECURITY_PASSWORD_SALT": "p" * 48,
        }
    )
    result = production.test_cli_runner().invoke(args=["run", "--port", "5999"])
    assert result.exit_code != 0
    assert "for development" in result.output
