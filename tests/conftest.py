"""Session-wide test infrastructure: a real PostgreSQL and a real Redis.

`TEST_DATABASE_URL` / `REDIS_URL` point at servers when set (CI); otherwise the
embedded servers under `instance/` are started. The test database is created afresh
each session, and two tenants, `alpha` and `beta`, exist in every session.

Database roles are cluster-wide, so every role the suite creates carries a prefix
made of the test database's name and is dropped at the start of the next session;
two suites on one cluster (say, two checkouts) use two database names.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask_security import hash_password
from sqlalchemy.engine import make_url

from core import dbroles, embedded, settings
from core.app import create_app
from core.db import TenantSession, db
from core.dbroles import role_prefix
from core.tenancy import Tenant, tenant_context
from tenants import provisioning, registry
from tenants.admin import admin_engine
from tenants.cli import upgrade_public

# The plugin authors' fixtures and this suite send requests to tenant hosts alike.
from tenants.pytest_plugin import HostClient, host_client  # noqa: F401 (re-exported to the suite)

ROOT = Path(__file__).resolve().parent.parent
TEST_DB = "powerbuyer_test"
PASSWORD = "correct horse battery staple"


def _server_url() -> str:
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        return url
    return embedded.postgres_url(ROOT / "instance", database="postgres")


def _database_name(server_url: str) -> str:
    if os.environ.get("TEST_DATABASE_URL"):
        return make_url(server_url).database or TEST_DB
    return TEST_DB


def _recreate_database(server_url: str) -> str:
    """Drop and create the test database and this suite's roles; return its URL."""
    database = _database_name(server_url)
    return dbroles.recreate_database(
        make_url(server_url).set(database=database).render_as_string(hide_password=False)
    )


def _redis_url() -> str:
    return os.environ.get("REDIS_URL") or embedded.redis_url(ROOT / "instance")


@pytest.fixture(scope="session")
def database_url() -> str:
    return _recreate_database(_server_url())


@pytest.fixture(scope="session")
def app_config(database_url: str) -> dict:
    """Config overrides every app in the suite uses (also for spawned processes)."""
    database = make_url(database_url).database
    assert database
    return {
        "ENV_NAME": "test",
        "TESTING": True,
        "DATABASE_URL": database_url,
        "DATABASE_ADMIN_URL": None,
        "REDIS_URL": _redis_url(),
        "DB_ROLE_PREFIX": role_prefix(database),
        "APP_DB_ROLE": role_prefix(database) + "app",
        "RQ_QUEUE_PREFIX": f"pbtest:{database}",
        "SERVER_NAME": "localhost:5000",
        "WTF_CSRF_ENABLED": False,
        "INSTANCE_PATH": str(ROOT / "instance"),
        "JOB_HEARTBEAT_SECONDS": 0.5,
        "JOB_ABANDONED_AFTER_SECONDS": 3,
        # The whole suite signs in from one address, failing on purpose now and then;
        # tests of the limits set tight ones (tests/security/test_authn.py).
        "LOGIN_RATE_LIMIT_PER_IP": "100000 per 10 minutes",
        "LOGIN_RATE_LIMIT_PER_ACCOUNT": "100000 per 10 minutes",
    }


@pytest.fixture(scope="session")
def app(app_config: dict) -> Iterator[Flask]:
    app = create_app(app_config)
    upgrade_public(app)
    redis = app.extensions["redis"]
    for key in redis.scan_iter("pbtest*"):
        redis.delete(key)
    for key in redis.scan_iter("pb:*"):
        redis.delete(key)
    with app.app_context():
        for slug in ("alpha", "beta"):
            make_tenant(app, slug)
    yield app


def make_tenant(
    app: Flask, slug: str, name: str | None = None, *, admin_mfa: bool = False
) -> Tenant:
    """Provision a tenant with an admin `admin@<slug>.example.com` / PASSWORD.

    A new tenant makes its admins set up two-factor authentication before anything
    else. Test tenants let them sign in with a password alone, so any test can sign
    in as them, unless `admin_mfa` keeps the product's default (tests/security/test_mfa.py).
    """
    with app.app_context():
        created = provisioning.create_tenant(
            admin_engine(app),
            provisioning.NewTenant(
                slug, name or slug.title(), f"admin@{slug}.example.com", hash_password(PASSWORD)
            ),
            app_role=app.config["APP_DB_ROLE"],
            role_prefix=app.config["DB_ROLE_PREFIX"],
        )
    if not admin_mfa:
        # Stored directly rather than through settings.set, so the setup leaves the new
        # tenant's audit log empty.
        with app.app_context(), tenant_context(created):
            db.session.add(settings.TenantSetting(name="mfa_required_roles", value=[]))
            db.session.commit()
    return created


def tenant(app: Flask, slug: str) -> Tenant:
    with app.app_context():
        found = registry.by_slug(db.engine, slug)
    assert found is not None, slug
    return found


@pytest.fixture(scope="session")
def alpha(app: Flask) -> Tenant:
    return tenant(app, "alpha")


@pytest.fixture(scope="session")
def beta(app: Flask) -> Tenant:
    return tenant(app, "beta")


@pytest.fixture
def alpha_client(app: Flask, alpha: Tenant) -> FlaskClient:
    return host_client(app, "alpha")


@pytest.fixture
def beta_client(app: Flask, beta: Tenant) -> FlaskClient:
    return host_client(app, "beta")


@pytest.fixture
def apex_client(app: Flask) -> FlaskClient:
    return host_client(app, None)


class _ConnectionBoundSession(TenantSession):
    """Flask-SQLAlchemy picks the app's engine for mapped classes; send every statement
    through the test's connection instead."""

    def get_bind(self, *args, **kwargs):  # type: ignore[override]
        return self.bind


@contextmanager
def rolled_back_session(app: Flask, tenant: Tenant) -> Iterator[None]:
    """Run in `tenant` with db.session bound to one transaction rolled back at the end.

    Code under test may commit: its commits release savepoints inside the outer
    transaction, which is never committed.
    """
    with app.app_context(), tenant_context(tenant), db.engine.connect() as conn:
        outer = conn.begin()
        original = db.session
        db.session = db._make_scoped_session(
            {
                "class_": _ConnectionBoundSession,
                "bind": conn,
                "join_transaction_mode": "create_savepoint",
            }
        )
        try:
            yield
        finally:
            db.session.remove()
            db.session = original
            outer.rollback()


@pytest.fixture
def alpha_db(app: Flask, alpha: Tenant) -> Iterator[None]:
    """db.session in tenant alpha, rolled back after the test."""
    with rolled_back_session(app, alpha):
        yield


@pytest.fixture
def beta_db(app: Flask, beta: Tenant) -> Iterator[None]:
    """db.session in tenant beta, rolled back after the test."""
    with rolled_back_session(app, beta):
        yield
