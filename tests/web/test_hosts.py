"""Host rules: the apex serves marketing and signup only, tenant hosts the rest, an
unknown host nothing, a suspended tenant a 403 page."""

from __future__ import annotations

import uuid

import pytest
from flask import Flask

from tenants import provisioning
from tenants.admin import admin_engine
from tests.conftest import host_client, make_tenant
from tests.web.conftest import client_for_host, login


def test_apex_serves_the_landing_page_and_signup(apex_client) -> None:
    landing = apex_client.get("/")
    assert landing.status_code == 200
    assert "Sign up your brokerage" in landing.text
    assert apex_client.get("/signup").status_code == 200


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/login"),
        ("POST", "/login"),
        ("POST", "/logout"),
        ("GET", f"/jobs/{uuid.uuid4()}"),
        ("GET", "/api/v1/ping"),
        ("GET", "/api/v1/openapi.json"),
    ],
)
def test_apex_hides_tenant_screens_login_and_api(apex_client, method: str, path: str) -> None:
    assert apex_client.open(path, method=method).status_code == 404


def test_apex_api_404_is_problem_json(apex_client) -> None:
    response = apex_client.get("/api/v1/ping")
    assert response.mimetype == "application/problem+json"
    assert response.json["status"] == 404


@pytest.mark.parametrize("path", ["/signup", "/signup/" + str(uuid.uuid4())])
def test_tenant_host_hides_signup(alpha_client, path: str) -> None:
    assert alpha_client.get(path).status_code == 404
    assert alpha_client.post("/signup", data={"slug": "x"}).status_code == 404


def test_tenant_home_requires_login(alpha_client) -> None:
    response = alpha_client.get("/")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")


def test_unknown_tenant_is_404_with_the_resolver_message(app: Flask) -> None:
    client = client_for_host(app, "nosuch." + app.config["SERVER_NAME"])
    page = client.get("/")
    assert page.status_code == 404
    assert page.mimetype == "text/html"
    assert "No brokerage uses this address." in page.text
    # Links lead back to the apex, not to more of the unknown host.
    assert 'href="http://localhost:5000/"' in page.text
    assert 'href="http://localhost:5000/signup"' in page.text
    api = client.get("/api/v1/ping")
    assert api.status_code == 404
    assert api.json["detail"] == "No brokerage uses this address."


def test_foreign_host_is_404(app: Flask) -> None:
    page = client_for_host(app, "example.org").get("/")
    assert page.status_code == 404
    assert "This address does not belong to any brokerage." in page.text


@pytest.fixture(scope="module")
def suspendable(app: Flask) -> str:
    make_tenant(app, "suspendable")
    return "suspendable"


def test_suspended_tenant_is_403_then_resumed(app: Flask, suspendable: str) -> None:
    client = host_client(app, suspendable)
    assert login(client, f"admin@{suspendable}.example.com").status_code == 302
    engine = admin_engine(app)
    provisioning.set_status(engine, suspendable, "suspended")
    try:
        page = client.get("/")
        assert page.status_code == 403
        assert "This brokerage&#39;s account is suspended." in page.text
        assert client.get("/login").status_code == 403
        api = client.get("/api/v1/ping")
        assert api.status_code == 403
        assert api.mimetype == "application/problem+json"
        assert api.json["detail"] == "This brokerage's account is suspended."
        # Probes and the stylesheet do not depend on the tenant.
        assert client.get("/healthz").status_code == 200
        with client.get("/static/app.css") as css:
            assert css.status_code == 200
    finally:
        provisioning.set_status(engine, suspendable, "active")
    assert client.get("/").status_code == 200
