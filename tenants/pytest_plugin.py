"""pytest fixtures for plugin authors: a Power Buyer to test a plugin against.

Installed with Power Buyer and loaded by pytest through the `pytest11` entry point,
so a plugin's own test suite only asks for the fixtures (docs/plugins.md):

    def test_quote(powerbuyer_quote):
        quote = powerbuyer_quote("travel_single_trip", {"destination": "europe", ...})
        assert quote["premium"] == "42.00"

Every fixture is named `powerbuyer_*`, so it never shadows a project's own fixtures.
The database and Redis are real, as in Power Buyer's own suite: `TEST_DATABASE_URL`
(a superuser URL; the database it names is dropped and created again, with its
roles) and `REDIS_URL` when set, the embedded servers under `./instance` otherwise.

What the fixtures give (session-wide unless said otherwise):
  powerbuyer_app            the application, public schema at head
  powerbuyer_plugins        names of the plugins to enable (override it; default:
                            every installed plugin)
  powerbuyer_tenant         a provisioned tenant with those plugins enabled
  powerbuyer_other_tenant   a second tenant with none of them (for isolation tests)
  powerbuyer_users          {role: TenantUser} for admin, manager, agent and customer
  powerbuyer_api            an API client: .as_role("agent").post("/api/v1/...", json=)
                            (function-scoped)
  powerbuyer_customer       a customer of the tenant's agent (function-scoped)
  powerbuyer_quote          quote(product, risk, start_date=None) -> the API's JSON,
                            enabling the product for the tenant first
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.engine import make_url

from core import dbroles, embedded, settings
from core.app import create_app
from core.db import db
from core.tenancy import Tenant, tenant_context

PASSWORD = "plugin tests' password, not a secret"
DEFAULT_DATABASE = "powerbuyer_plugin_test"
ROLES = ("admin", "manager", "agent", "customer")


def _fresh_database() -> str:
    """Drop and create the test database and its roles; return its URL."""
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        server = make_url(url).set(drivername="postgresql")
        database = server.database or DEFAULT_DATABASE
    else:
        server = make_url(embedded.postgres_url(Path("instance"), database="postgres"))
        database = DEFAULT_DATABASE
    return dbroles.recreate_database(
        server.set(database=database).render_as_string(hide_password=False)
    )


@pytest.fixture(scope="session")
def powerbuyer_app() -> Iterator[Flask]:
    from tenants.cli import upgrade_public

    url = _fresh_database()
    database = make_url(url).database
    prefix = dbroles.role_prefix(database)
    app = create_app(
        {
            "ENV_NAME": "test",
            "TESTING": True,
            "DATABASE_URL": url,
            "DATABASE_ADMIN_URL": None,
            "REDIS_URL": os.environ.get("REDIS_URL") or embedded.redis_url(Path("instance")),
            "DB_ROLE_PREFIX": prefix,
            "APP_DB_ROLE": prefix + "app",
            "RQ_QUEUE_PREFIX": f"pbplugintest:{database}",
            "SERVER_NAME": "localhost:5000",
            "WTF_CSRF_ENABLED": False,
        }
    )
    upgrade_public(app)
    yield app


@pytest.fixture(scope="session")
def powerbuyer_plugins(powerbuyer_app: Flask) -> tuple[str, ...]:
    """The plugins `powerbuyer_tenant` enables. Override in your conftest.py:

    @pytest.fixture(scope="session")
    def powerbuyer_plugins():
        return ("travel",)
    """
    from core import plugins

    host = plugins.manager(powerbuyer_app)
    return tuple(name for name in host.names() if name not in host.always_enabled)


def _provision(app: Flask, slug: str, enabled: tuple[str, ...]) -> Tenant:
    from flask_security import hash_password

    from tenants import provisioning, registry
    from tenants.admin import admin_engine
    from tenants.plugin_cli import enable_plugin

    with app.app_context():
        engine = admin_engine(app)
        tenant = provisioning.create_tenant(
            engine,
            provisioning.NewTenant(
                slug, slug.title(), f"admin@{slug}.example.com", hash_password(PASSWORD)
            ),
            app_role=app.config["APP_DB_ROLE"],
            role_prefix=app.config["DB_ROLE_PREFIX"],
        )
        for name in enabled:
            enable_plugin(engine, tenant, name)
        with tenant_context(tenant):
            # Test users sign in with a password alone.
            settings.set("mfa_required_roles", [])
            db.session.commit()
        found = registry.by_slug(engine, slug)
    assert found is not None
    return found


@pytest.fixture(scope="session")
def powerbuyer_tenant(powerbuyer_app: Flask, powerbuyer_plugins: tuple[str, ...]) -> Tenant:
    return _provision(powerbuyer_app, "plugintest", powerbuyer_plugins)


@pytest.fixture(scope="session")
def powerbuyer_other_tenant(powerbuyer_app: Flask) -> Tenant:
    return _provision(powerbuyer_app, "othertenant", ())


@dataclass(frozen=True)
class TenantUser:
    id: int
    email: str
    password: str
    role: str


def _make_user(app: Flask, tenant: Tenant, role: str) -> TenantUser:
    from flask_security import hash_password

    email = f"{role}-{uuid.uuid4().hex[:8]}@{tenant.slug}.example.com"
    with app.app_context(), tenant_context(tenant):
        user = app.extensions["security"].datastore.create_user(
            email=email, password=hash_password(PASSWORD), roles=[role]
        )
        db.session.commit()
        return TenantUser(user.id, email, PASSWORD, role)


@pytest.fixture(scope="session")
def powerbuyer_users(powerbuyer_app: Flask, powerbuyer_tenant: Tenant) -> dict[str, TenantUser]:
    """One user of each default role; the agent has an agent profile (a licence)."""
    users = {role: _make_user(powerbuyer_app, powerbuyer_tenant, role) for role in ROLES}
    from core.agents.models import Agent

    with powerbuyer_app.app_context(), tenant_context(powerbuyer_tenant):
        db.session.add(
            Agent(
                user_id=users["agent"].id,
                licence_number="LIC-PLUGIN-TEST",
                licence_expires_on=date(date.today().year + 5, 12, 31),
            )
        )
        db.session.commit()
    return users


class HostClient(FlaskClient):
    """A test client whose requests all go to one host (a tenant's, or the apex)."""

    base_url = "http://localhost"

    def open(self, *args: Any, **kwargs: Any) -> Any:
        if not kwargs.get("base_url") and not (args and not isinstance(args[0], str)):
            kwargs["base_url"] = self.base_url
        return super().open(*args, **kwargs)


def host_client(app: Flask, slug: str | None) -> HostClient:
    """A test client for a tenant's host (or the apex when `slug` is None)."""
    server = app.config["SERVER_NAME"]
    client = HostClient(app, app.response_class, use_cookies=True)
    client.base_url = f"http://{slug}.{server}" if slug else f"http://{server}"
    return client


class ApiClient:
    """The tenant's /api/v1 with a bearer token of one user; answers are Werkzeug
    test responses (`.status_code`, `.json`)."""

    def __init__(self, client: FlaskClient, token: str) -> None:
        self.client = client
        self.headers = {"Authorization": f"Bearer {token}"}

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.client.get(path, headers=self.headers, **kwargs)

    def post(self, path: str, json: Any = None, **kwargs: Any) -> Any:
        return self.client.post(path, json=json, headers=self.headers, **kwargs)

    def patch(self, path: str, json: Any = None, **kwargs: Any) -> Any:
        return self.client.patch(path, json=json, headers=self.headers, **kwargs)


class Api:
    def __init__(self, app: Flask, tenant: Tenant, users: dict[str, TenantUser]) -> None:
        self.app, self.tenant, self.users = app, tenant, users

    def client(self, tenant: Tenant | None = None) -> FlaskClient:
        """A test client on `tenant`'s host (default: the plugin tests' tenant)."""
        return host_client(self.app, (tenant or self.tenant).slug)

    def as_user(self, user: TenantUser, tenant: Tenant | None = None) -> ApiClient:
        client = self.client(tenant)
        answer = client.post(
            "/api/v1/auth/token", json={"email": user.email, "password": user.password}
        )
        assert answer.status_code == 200, answer.json
        return ApiClient(client, answer.json["access_token"])

    def as_role(self, role: str) -> ApiClient:
        return self.as_user(self.users[role])

    def admin_of(self, tenant: Tenant) -> ApiClient:
        """The first admin of `tenant` (one `powerbuyer_*` fixtures provisioned)."""
        admin = TenantUser(0, f"admin@{tenant.slug}.example.com", PASSWORD, "admin")
        return self.as_user(admin, tenant)


@pytest.fixture
def powerbuyer_api(
    powerbuyer_app: Flask, powerbuyer_tenant: Tenant, powerbuyer_users: dict[str, TenantUser]
) -> Api:
    return Api(powerbuyer_app, powerbuyer_tenant, powerbuyer_users)


@pytest.fixture
def powerbuyer_customer(powerbuyer_api: Api) -> dict[str, Any]:
    """A new customer (a person) in the agent's book, as the API answered it."""
    # An agent's new customer joins their own book.
    answer = powerbuyer_api.as_role("agent").post(
        "/api/v1/customers?force=true",
        json={
            "kind": "person",
            "first_name": "Plugin",
            "last_name": f"Tester {uuid.uuid4().hex[:6]}",
            "date_of_birth": "1985-06-15",
            "email": f"tester-{uuid.uuid4().hex[:8]}@example.com",
        },
    )
    assert answer.status_code == 201, answer.json
    return answer.json  # type: ignore[no-any-return]


def enable_product(app: Flask, tenant: Tenant, line_code: str) -> None:
    """Let `tenant` sell `line_code` (a no-op when it already does)."""
    from sqlalchemy import select

    from core.products import operations, queries
    from core.security.models import User

    with app.app_context(), tenant_context(tenant):
        product = queries.by_line(line_code)
        if product is None or not product.is_active:
            admin = db.session.scalars(
                select(User).where(User.email == f"admin@{tenant.slug}.example.com")
            ).one()
            operations.enable_product(line_code, user=admin)


@pytest.fixture
def powerbuyer_quote(
    powerbuyer_app: Flask,
    powerbuyer_tenant: Tenant,
    powerbuyer_api: Api,
    powerbuyer_customer: dict[str, Any],
) -> Callable[..., dict[str, Any]]:
    """`quote(product, risk, start_date=None, expect=201)`: enable the product for the
    tenant, post a quote as its agent for `powerbuyer_customer`, check the status and
    return the JSON answer (a 422's problem document when `expect=422`)."""
    agent = powerbuyer_api.as_role("agent")

    def quote(
        product: str, risk: dict[str, Any], start_date: date | None = None, expect: int = 201
    ) -> dict[str, Any]:
        enable_product(powerbuyer_app, powerbuyer_tenant, product)
        answer = agent.post(
            "/api/v1/quotes",
            json={
                "product": product,
                "customer_id": powerbuyer_customer["id"],
                "start_date": (start_date or date.today()).isoformat(),
                "risk": risk,
            },
        )
        assert answer.status_code == expect, answer.json
        return answer.json  # type: ignore[no-any-return]

    return quote
