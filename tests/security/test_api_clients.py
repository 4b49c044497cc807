"""API clients: the admin screen, the client-credentials grant, scopes as permissions,
and revocation that takes effect on the next request."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask, jsonify
from sqlalchemy import select
from werkzeug.test import TestResponse

from core.app import create_app
from core.db import db
from core.security import throttle, tokens
from core.security.authz import requires
from core.tenancy import Tenant, tenant_context
from tests.conftest import PASSWORD, HostClient, host_client
from tests.conftest import tenant as tenant_by_slug
from tests.security.test_tokens import (
    assert_invalid_token,
    audit_entries,
    bearer,
    make_user,
    me,
    unverified,
)

INTEGRATOR = "integrator"
INTEGRATOR_PERMISSIONS = ["settings:read", "settings:update", "customers:read", "policies:read"]


def make_role(app: Flask, tenant: Tenant, name: str, permissions: list[str]) -> None:
    with app.app_context(), tenant_context(tenant):
        datastore = app.extensions["security"].datastore
        if datastore.find_role(name) is None:
            datastore.create_role(name=name, permissions=permissions)
            db.session.commit()


def browser_as(app: Flask, tenant: Tenant, roles: tuple[str, ...]) -> HostClient:
    user = make_user(app, tenant, roles)
    client = host_client(app, tenant.slug)
    response = client.post("/login", data={"email": user.email, "password": PASSWORD})
    assert response.status_code == 302, response.status_code
    return client


@pytest.fixture
def integrator(app: Flask, alpha: Tenant) -> HostClient:
    """A browser on alpha signed in as a user who may manage API clients, without the
    admin role (whose two-factor enrolment is not this file's subject)."""
    make_role(app, alpha, INTEGRATOR, INTEGRATOR_PERMISSIONS)
    return browser_as(app, alpha, (INTEGRATOR,))


@dataclass(frozen=True)
class Created:
    id: int
    client_id: str
    secret: str


def create_client(browser: HostClient, name: str, scopes: list[str]) -> Created:
    page = browser.post("/settings/api-clients", data={"name": name, "scopes": scopes})
    assert page.status_code == 200, page.text
    html = page.text
    client_id = re.search(r'id="client-id" type="text" value="([^"]+)"', html)[1]
    secret = re.search(r'id="client-secret" type="text" value="([^"]+)"', html)[1]
    found = next(c for c in _clients(browser) if c.client_id == client_id)
    return Created(found.id, client_id, secret)


def _clients(browser: HostClient) -> list[tokens.ApiClient]:
    app = browser.application
    slug = browser.base_url.split("//")[1].split(".")[0]
    with app.app_context(), tenant_context(tenant_by_slug(app, slug)):
        return list(db.session.scalars(select(tokens.ApiClient)))


def client_token(client: Any, client_id: str, secret: str, **extra: Any) -> TestResponse:
    return client.post(
        "/api/v1/auth/token",
        json={
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": secret,
            **extra,
        },
    )


@pytest.fixture(autouse=True)
def fresh_sign_in_limits(app: Flask) -> Iterator[None]:
    """These tests fail sign-ins on purpose, all from 127.0.0.1: start each with empty
    rate-limit counts, and leave them empty for the tests that follow."""
    throttle.limiter(app).reset()
    yield
    throttle.limiter(app).reset()


# --- the screen ------------------------------------------------------------------------


def test_creating_a_client_shows_its_secret_once_and_stores_only_a_digest(app, alpha, integrator):
    page = integrator.post(
        "/settings/api-clients",
        data={"name": "Accounting export", "scopes": ["customers:read", "policies:read"]},
    )
    assert page.status_code == 200
    assert page.headers["Cache-Control"] == "no-store"
    secret = re.search(r'id="client-secret" type="text" value="(pbs_[^"]+)"', page.text)[1]
    client_id = re.search(r'id="client-id" type="text" value="(pbc_[^"]+)"', page.text)[1]
    assert len(secret) > 40

    stored = next(c for c in _clients(integrator) if c.client_id == client_id)
    assert stored.name == "Accounting export"
    assert stored.scopes == ["customers:read", "policies:read"]
    assert stored.secret_hash == tokens.digest(secret)
    assert secret not in repr([getattr(stored, c.key) for c in stored.__table__.columns])
    assert stored.created_by and stored.created_by.startswith("user:")

    listing = integrator.get("/settings/api-clients")
    assert listing.status_code == 200
    assert client_id in listing.text and secret not in listing.text

    created = audit_entries(app, alpha, "clients.create", stored.id, "api_clients")
    assert len(created) == 1
    assert created[0].actor == stored.created_by


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"name": "", "scopes": ["customers:read"]}, "name"),
        ({"name": "x" * 101, "scopes": ["customers:read"]}, "name"),
        ({"name": "nul\x00byte", "scopes": ["customers:read"]}, "name"),
        ({"name": "No scopes"}, "scopes"),
        ({"name": "Typo", "scopes": ["customers:raed"]}, "scopes"),
        ({"name": "Portal", "scopes": ["portal:access"]}, "scopes"),
        # The integrator does not hold billing:refund, so cannot hand it out.
        ({"name": "Escalation", "scopes": ["billing:refund"]}, "scopes"),
    ],
)
def test_an_invalid_client_is_422_with_the_form_and_nothing_created(integrator, data, field):
    before = len(_clients(integrator))
    page = integrator.post("/settings/api-clients", data=data)
    assert page.status_code == 422
    assert f'id="{field}-errors"' in page.text
    assert len(_clients(integrator)) == before


def test_the_screen_needs_settings_permissions(app, alpha):
    make_role(app, alpha, "settings-reader", ["settings:read"])
    reader = browser_as(app, alpha, ("settings-reader",))
    assert reader.get("/settings/api-clients").status_code == 200
    assert "New client" not in reader.get("/settings/api-clients").text
    denied = reader.post("/settings/api-clients", data={"name": "x", "scopes": ["customers:read"]})
    assert denied.status_code == 403

    agent = browser_as(app, alpha, ("agent",))
    assert agent.get("/settings/api-clients").status_code == 403

    anonymous = host_client(app, "alpha").get("/settings/api-clients")
    assert anonymous.status_code == 302
    assert "/login" in anonymous.headers["Location"]


# --- the client-credentials grant ------------------------------------------------------


def test_a_client_trades_its_credentials_for_a_token_with_its_scopes(app, alpha, integrator):
    created = create_client(integrator, "CRM sync", ["customers:read"])
    api = host_client(app, "alpha")
    response = client_token(api, created.client_id, created.secret)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert response.json.keys() == {"access_token", "token_type", "expires_in"}
    assert response.json["expires_in"] == 900

    _, claims = unverified(response.json["access_token"])
    assert claims["sub"] == f"client:{created.client_id}"
    assert claims["scope"] == "customers:read"
    assert claims["tenant"] == {"id": alpha.id, "slug": "alpha"}

    who = me(api, response.json["access_token"])
    assert who.status_code == 200
    assert who.json == {
        "subject": f"client:{created.client_id}",
        "kind": "client",
        "name": "CRM sync",
        "permissions": ["customers:read"],
    }
    issued = audit_entries(app, alpha, "tokens.issue", created.id, "api_clients")
    assert [(e.actor, e.details["grant"]) for e in issued] == [
        (f"client:{created.client_id}", "client_credentials")
    ]


def test_http_basic_client_authentication_is_accepted(app, alpha, integrator):
    created = create_client(integrator, "Basic", ["policies:read"])
    credentials = base64.b64encode(f"{created.client_id}:{created.secret}".encode()).decode()
    response = host_client(app, "alpha").post(
        "/api/v1/auth/token",
        json={"grant_type": "client_credentials"},
        headers={"Authorization": f"Basic {credentials}"},
    )
    assert response.status_code == 200
    assert unverified(response.json["access_token"])[1]["scope"] == "policies:read"


def test_a_client_may_ask_for_fewer_scopes_but_not_more(app, alpha, integrator):
    created = create_client(integrator, "Narrow", ["customers:read", "policies:read"])
    api = host_client(app, "alpha")
    narrow = client_token(api, created.client_id, created.secret, scope="policies:read")
    assert narrow.status_code == 200
    assert me(api, narrow.json["access_token"]).json["permissions"] == ["policies:read"]

    wider = client_token(api, created.client_id, created.secret, scope="settings:update")
    assert wider.status_code == 422
    assert set(wider.json["errors"]) == {"scope"}


def test_a_wrong_client_secret_is_401_and_audited(app, alpha, integrator):
    created = create_client(integrator, "Wrong", ["customers:read"])
    response = client_token(host_client(app, "alpha"), created.client_id, "pbs_guess")
    assert response.status_code == 401
    assert response.mimetype == "application/problem+json"
    failed = audit_entries(app, alpha, "auth.login_failed", created.id, "api_clients")
    assert failed[-1].details["grant"] == "client_credentials"


def test_a_client_of_one_tenant_does_not_exist_on_another(app, alpha, beta, integrator):
    created = create_client(integrator, "Alpha only", ["customers:read"])
    assert (
        client_token(host_client(app, "beta"), created.client_id, created.secret).status_code == 401
    )
    token = client_token(host_client(app, "alpha"), created.client_id, created.secret)
    assert_invalid_token(me(host_client(app, "beta"), token.json["access_token"]))


# --- revocation ------------------------------------------------------------------------


def test_revoking_a_client_stops_its_tokens_at_once(app, alpha, integrator):
    created = create_client(integrator, "Short-lived", ["customers:read"])
    api = host_client(app, "alpha")
    access = client_token(api, created.client_id, created.secret).json["access_token"]
    assert me(api, access).status_code == 200

    response = integrator.post(f"/settings/api-clients/{created.id}/revoke")
    assert response.status_code == 303
    assert_invalid_token(me(api, access))
    assert client_token(api, created.client_id, created.secret).status_code == 401

    revoked = next(c for c in _clients(integrator) if c.id == created.id)
    assert revoked.is_active is False and revoked.revoked_at is not None
    assert len(audit_entries(app, alpha, "clients.revoke", created.id, "api_clients")) == 1
    assert "Revoked" in integrator.get("/settings/api-clients").text


def test_revoking_an_unknown_client_is_404(integrator):
    assert integrator.post("/settings/api-clients/999999/revoke").status_code == 404


def test_another_tenant_cannot_revoke_a_client(app, alpha, beta, integrator):
    created = create_client(integrator, "Kept", ["customers:read"])
    make_role(app, beta, INTEGRATOR, INTEGRATOR_PERMISSIONS)
    beta_browser = browser_as(app, beta, (INTEGRATOR,))
    if created.id not in {c.id for c in _clients(beta_browser)}:
        assert beta_browser.post(f"/settings/api-clients/{created.id}/revoke").status_code == 404
    else:  # same number in beta's own sequence: that is beta's client, not alpha's
        beta_browser.post(f"/settings/api-clients/{created.id}/revoke")
    kept = next(c for c in _clients(integrator) if c.id == created.id)
    assert kept.is_active


# --- scopes are permissions -------------------------------------------------------------


@pytest.fixture(scope="module")
def probe_app(app: Flask, app_config: dict) -> Iterator[Flask]:
    """An app with two API views guarded by @requires, as module views will be."""
    probe = create_app(app_config)

    @requires("customers:read")
    def read_customers() -> Any:
        return jsonify(ok=True)

    @requires("settings:update")
    def change_settings() -> Any:
        return jsonify(ok=True)

    # "api." endpoints get the API blueprint's hooks, bearer authentication included.
    probe.add_url_rule("/api/v1/probe/customers", "api.probe_customers", read_customers)
    probe.add_url_rule(
        "/api/v1/probe/settings", "api.probe_settings", change_settings, methods=["POST"]
    )
    yield probe
    with probe.app_context():
        db.engine.dispose()


def test_requires_guards_api_views_by_the_clients_scopes(app, alpha, integrator, probe_app):
    created = create_client(integrator, "Reader", ["customers:read"])
    api = host_client(probe_app, "alpha")
    access = client_token(api, created.client_id, created.secret).json["access_token"]

    assert api.get("/api/v1/probe/customers", headers=bearer(access)).json == {"ok": True}
    denied = api.post("/api/v1/probe/settings", headers=bearer(access))
    assert denied.status_code == 403
    assert denied.mimetype == "application/problem+json"
    assert audit_entries(app, alpha, "authz.denied")[-1].actor == f"client:{created.client_id}"

    assert api.get("/api/v1/probe/customers").status_code == 401
