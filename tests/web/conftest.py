"""Fixtures for the web layer: logged-in clients, odd hosts, apps with broken parts."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from core.app import create_app
from core.db import db
from tests.conftest import PASSWORD, HostClient, host_client
from web.errors import ValidationFailed


def login(client: FlaskClient, email: str, password: str = PASSWORD) -> TestResponse:
    return client.post("/login", data={"email": email, "password": password})


def client_for_host(app: Flask, host: str) -> HostClient:
    client = HostClient(app, app.response_class, use_cookies=True)
    client.base_url = f"http://{host}"
    return client


@pytest.fixture
def alpha_admin(app: Flask, alpha) -> HostClient:
    """A client on alpha's host, logged in as alpha's admin."""
    client = host_client(app, "alpha")
    assert login(client, "admin@alpha.example.com").status_code == 302
    return client


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def fragile_app(app: Flask, app_config: dict) -> Iterator[Flask]:
    """A second app whose errors are handled (not raised into the test) and which has
    routes that fail on purpose."""
    fragile = create_app({**app_config, "PROPAGATE_EXCEPTIONS": False})

    def boom() -> str:
        raise RuntimeError("secret internals")

    def invalid() -> str:
        raise ValidationFailed({"slug": ["Slug is reserved."]}, "The brokerage is not valid.")

    for prefix in ("", "/api/v1/test"):
        fragile.add_url_rule(f"{prefix}/boom", f"boom{prefix}", boom)
        fragile.add_url_rule(f"{prefix}/invalid", f"invalid{prefix}", invalid)
    yield fragile
    _dispose(fragile)


@pytest.fixture(scope="session")
def app_without_redis(app: Flask, app_config: dict) -> Iterator[Flask]:
    """An app whose Redis is a closed port on loopback."""
    broken = create_app({**app_config, "REDIS_URL": f"redis://127.0.0.1:{closed_port()}/0"})
    yield broken
    _dispose(broken)


@pytest.fixture(scope="session")
def csrf_app(app: Flask, app_config: dict) -> Iterator[Flask]:
    """An app with CSRF protection on, as in production (the suite turns it off)."""
    protected = create_app({**app_config, "WTF_CSRF_ENABLED": True})
    yield protected
    _dispose(protected)


def _dispose(extra: Flask) -> None:
    with extra.app_context():
        db.engine.dispose()
