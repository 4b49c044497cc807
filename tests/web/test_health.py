"""/healthz and /readyz answer on every host; /readyz names what is down."""

from __future__ import annotations

import pytest
from flask import Flask

from tests.web.conftest import client_for_host

HOSTS = ["localhost:5000", "alpha.localhost:5000", "nosuch.localhost:5000", "10.1.2.3:8000"]


@pytest.mark.parametrize("host", HOSTS)
def test_healthz_on_any_host(app: Flask, host: str) -> None:
    response = client_for_host(app, host).get("/healthz")
    assert response.status_code == 200
    assert response.json == {"status": "ok"}


@pytest.mark.parametrize("host", HOSTS)
def test_readyz_checks_postgresql_and_redis(app: Flask, host: str) -> None:
    response = client_for_host(app, host).get("/readyz")
    assert response.status_code == 200
    assert response.json == {"status": "ok", "checks": {"postgresql": "ok", "redis": "ok"}}


def test_readyz_is_503_naming_redis_when_it_is_unreachable(app_without_redis: Flask) -> None:
    client = client_for_host(app_without_redis, "localhost:5000")
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json == {
        "status": "unavailable",
        "checks": {"postgresql": "ok", "redis": "unavailable"},
    }
    # Alive all the same: liveness must not restart a process for a Redis outage.
    assert client.get("/healthz").status_code == 200
