"""Shared fixtures for authorization tests: one user per default role in alpha and beta,
signed-in clients for them, and reading a tenant's audit log.

The role users are created once per session (the database is new every session) as
`<role>.user@<slug>.example.com` with the suite's PASSWORD.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from flask import Flask
from flask_security import hash_password
from sqlalchemy import select

from core.app import create_app
from core.audit import AuditEntry
from core.db import db
from core.security.models import Role, User
from core.security.permissions import DEFAULT_ROLES
from core.tenancy import Tenant, tenant_context
from tests.conftest import PASSWORD, HostClient, host_client

ROLES = tuple(DEFAULT_ROLES)


def role_email(role: str, slug: str) -> str:
    return f"{role}.user@{slug}.example.com"


@dataclass(frozen=True)
class RoleUser:
    role: str
    slug: str
    email: str
    id: int


def create_user(app: Flask, tenant: Tenant, email: str, roles: list[str]) -> int:
    """A committed, active user of `tenant` with the named roles; returns its id."""
    with app.app_context(), tenant_context(tenant):
        user = app.extensions["security"].datastore.create_user(
            email=email,
            password=hash_password(PASSWORD),
            active=True,
            roles=[db.session.scalars(select(Role).where(Role.name == r)).one() for r in roles],
        )
        db.session.commit()
        return user.id


@pytest.fixture(scope="session")
def role_users(app: Flask, alpha: Tenant, beta: Tenant) -> dict[tuple[str, str], RoleUser]:
    """(role, slug) -> a user holding only that default role, in alpha and in beta."""
    users = {}
    for tenant in (alpha, beta):
        for role in ROLES:
            email = role_email(role, tenant.slug)
            user_id = create_user(app, tenant, email, [role])
            users[role, tenant.slug] = RoleUser(role, tenant.slug, email, user_id)
    return users


def sign_in(app: Flask, slug: str, email: str) -> HostClient:
    """A client on `slug`'s host, signed in as `email` through the login form."""
    client = host_client(app, slug)
    response = client.post("/login", data={"email": email, "password": PASSWORD})
    # To the dashboard: signed in, not stopped at a second-factor step.
    assert (response.status_code, response.headers.get("Location")) == (302, "/"), email
    return client


@pytest.fixture
def signed_in(app: Flask, role_users: dict) -> Iterator[object]:
    """`signed_in(role, slug="alpha")`: a client signed in as that role's user."""

    def make(role: str, slug: str = "alpha") -> HostClient:
        return sign_in(app, slug, role_users[role, slug].email)

    yield make


@pytest.fixture(scope="session")
def probe_app(app: Flask, app_config: dict) -> Iterator[Flask]:
    """The app plus tests/security/probe_views.py, a component of test-only views."""
    components = ("tenants", "web", "tests.security.probe_views")
    probed = create_app({**app_config, "COMPONENTS": components})
    yield probed
    with probed.app_context():
        db.engine.dispose()


def audit_entries(app: Flask, tenant: Tenant, action: str, after_id: int = 0) -> list[AuditEntry]:
    """The tenant's committed audit entries of `action` with an id above `after_id`."""
    with app.app_context(), tenant_context(tenant):
        entries = db.session.scalars(
            select(AuditEntry)
            .where(AuditEntry.action == action, AuditEntry.id > after_id)
            .order_by(AuditEntry.id)
        ).all()
        db.session.expunge_all()
        return list(entries)


def last_audit_id(app: Flask, tenant: Tenant) -> int:
    with app.app_context(), tenant_context(tenant):
        return db.session.scalar(select(db.func.coalesce(db.func.max(AuditEntry.id), 0)))


def user_id(app: Flask, tenant: Tenant, email: str) -> int:
    with app.app_context(), tenant_context(tenant):
        return db.session.scalars(select(User.id).where(User.email == email)).one()
