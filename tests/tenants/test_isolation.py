"""Trying to break tenant isolation (issue 2, tests a-h).

Each test fails if the isolation rule it names breaks: the checks are made against
what PostgreSQL reports (current_user, search_path, backend pid, permission errors),
not against what our code believes.
"""

from __future__ import annotations

import pytest
from flask import Blueprint, Flask, jsonify
from flask_login import current_user
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError, ProgrammingError

from core.app import create_app
from core.db import Base, db
from core.security.models import User
from core.tenancy import NoTenantError, Tenant, tenant_context, tenant_key
from tenants.admin import admin_engine
from tenants.models import PublicBase
from tests.conftest import PASSWORD, host_client

probe = Blueprint("probe", __name__)


def _snapshot() -> dict:
    row = db.session.execute(
        text("SELECT pg_backend_pid(), current_user, current_setting('search_path')")
    ).one()
    emails = db.session.scalars(select(User.email)).all()
    return {"pid": row[0], "role": row[1], "search_path": row[2], "emails": sorted(emails)}


@probe.get("/_probe")
def snapshot():
    return jsonify(_snapshot())


@probe.get("/_probe/raise")
def raise_mid_transaction():
    db.session.execute(text("SELECT 1 FROM users"))
    raise RuntimeError("boom in the middle of tenant A's transaction")


@probe.get("/_probe/savepoint")
def savepoint():
    before = _snapshot()
    nested = db.session.begin_nested()
    try:
        db.session.execute(text("SELECT * FROM no_such_table"))
    except ProgrammingError:
        nested.rollback()
    return jsonify(before=before, after=_snapshot())


@probe.get("/_probe/commit")
def commit_mid_request():
    before = _snapshot()
    db.session.commit()
    return jsonify(before=before, after=_snapshot())


@probe.get("/_probe/whoami")
def whoami():
    return jsonify(authenticated=bool(current_user.is_authenticated))


@pytest.fixture(scope="module")
def probe_app(app_config: dict, app: Flask) -> Flask:
    """An app whose pool holds exactly one connection, with probe routes."""
    config = dict(app_config)
    config["SQLALCHEMY_ENGINE_OPTIONS"] = {"pool_size": 1, "max_overflow": 0}
    config["PROPAGATE_EXCEPTIONS"] = False
    probe_app = create_app(config)
    probe_app.register_blueprint(probe)
    # Probe routes are test-only; declare them so any default-deny check lets them pass.
    return probe_app


def _emails_of(app: Flask, tenant: Tenant) -> list[str]:
    """The tenant's users, read as the database owner straight from its schema (other
    tests add users to alpha and beta, so the list is read, not assumed)."""
    with admin_engine(app).connect() as conn:
        emails = conn.scalars(text(f'SELECT email FROM "{tenant.schema}".users')).all()
    assert f"admin@{tenant.slug}.example.com" in emails
    return sorted(emails)


def test_a_one_connection_pool_serves_a_then_b(probe_app: Flask, alpha: Tenant, beta: Tenant):
    a = host_client(probe_app, "alpha").get("/_probe").get_json()
    b = host_client(probe_app, "beta").get("/_probe").get_json()
    assert a["pid"] == b["pid"], "the pool should have reused its single connection"
    assert a["emails"] == _emails_of(probe_app, alpha)
    assert b["emails"] == _emails_of(probe_app, beta)
    assert b["role"] == beta.role and b["search_path"] == beta.schema


def test_a_after_tenant_a_raised_mid_transaction(probe_app: Flask, alpha: Tenant, beta: Tenant):
    pid = host_client(probe_app, "alpha").get("/_probe").get_json()["pid"]
    assert host_client(probe_app, "alpha").get("/_probe/raise").status_code == 500
    b = host_client(probe_app, "beta").get("/_probe").get_json()
    assert b["pid"] == pid
    assert b["emails"] == _emails_of(probe_app, beta)
    assert b["role"] == beta.role


def test_b_savepoint_rollback_keeps_the_tenant(probe_app: Flask, alpha: Tenant):
    body = host_client(probe_app, "alpha").get("/_probe/savepoint").get_json()
    assert body["after"]["role"] == alpha.role
    assert body["after"]["search_path"] == alpha.schema
    assert body["after"]["emails"] == _emails_of(probe_app, alpha)


def test_c_commit_mid_request_keeps_the_tenant(probe_app: Flask, beta: Tenant):
    body = host_client(probe_app, "beta").get("/_probe/commit").get_json()
    assert body["before"]["role"] == body["after"]["role"] == beta.role
    assert body["after"]["emails"] == _emails_of(probe_app, beta)


def test_d_no_tenant_in_context_reads_nothing(app: Flask):
    with app.app_context():
        with pytest.raises(ProgrammingError, match="does not exist"):
            db.session.scalars(select(User)).all()
        db.session.rollback()
        with pytest.raises(ProgrammingError, match="does not exist"):
            db.session.execute(text("SELECT * FROM users")).all()
        db.session.rollback()
        # Naming the schema does not help: the login role owns nothing and inherits nothing.
        with pytest.raises(DBAPIError, match="permission denied"):
            db.session.execute(text("SELECT * FROM t_alpha.users")).all()
        db.session.rollback()


def test_e_other_tenants_schema_refused_by_postgresql(app: Flask, alpha: Tenant):
    with app.app_context(), tenant_context(alpha):
        # Its own users are readable (at least its admin; other tests add more).
        assert db.session.execute(text("SELECT count(*) FROM users")).scalar() >= 1
        with pytest.raises(DBAPIError, match="permission denied"):
            db.session.execute(text("SELECT * FROM t_beta.users")).all()
        db.session.rollback()
        # Nor can the tenant role reach public's registry directly.
        with pytest.raises(DBAPIError, match="permission denied"):
            db.session.execute(text("SELECT * FROM public.tenants")).all()
        db.session.rollback()


def test_login_role_is_unprivileged_and_noinherit(app: Flask):
    with app.app_context(), db.engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT rolsuper, rolinherit, rolcreaterole, rolcreatedb FROM pg_roles"
                " WHERE rolname = current_user"
            )
        ).one()
    assert tuple(row) == (False, False, False, False)


def test_one_session_serves_one_tenant(app: Flask, alpha: Tenant, beta: Tenant):
    with app.app_context():
        with tenant_context(alpha):
            db.session.execute(text("SELECT 1")).all()
            db.session.commit()
        with tenant_context(beta), pytest.raises(NoTenantError, match="one session serves one"):
            db.session.execute(text("SELECT 1")).all()
        db.session.rollback()


def test_g_session_cookie_from_a_is_refused_on_b(probe_app: Flask):
    a = host_client(probe_app, "alpha")
    response = a.post("/login", data={"email": "admin@alpha.example.com", "password": PASSWORD})
    assert response.status_code == 302
    assert a.get("/_probe/whoami").get_json() == {"authenticated": True}
    cookie = a.get_cookie("session", domain="alpha.localhost")
    assert cookie is not None
    b = host_client(probe_app, "beta")
    b.set_cookie("session", cookie.value, domain="beta.localhost")
    # Both admins are user id 1 with the same role names: only the cookie's scope
    # keeps alpha's admin out of beta.
    assert b.get("/_probe/whoami").get_json() == {"authenticated": False}


def test_h_redis_keys_carry_the_tenant(alpha: Tenant, beta: Tenant):
    with tenant_context(alpha):
        key_a = tenant_key("cache", "dashboard")
    with tenant_context(beta):
        key_b = tenant_key("cache", "dashboard")
    assert key_a != key_b
    assert "alpha" in key_a and "beta" in key_b
    with pytest.raises(NoTenantError):
        tenant_key("cache", "dashboard")


def test_no_business_table_name_exists_in_public(app: Flask):
    tenant_tables = {t.name for t in Base.metadata.sorted_tables}
    with app.app_context(), db.engine.connect() as conn:
        public = set(
            conn.execute(
                text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            ).scalars()
        )
    assert public == {t.name for t in PublicBase.metadata.sorted_tables} | {
        "shared_alembic_version"
    }
    assert not public & tenant_tables
