"""Provisioning, suspending and deleting tenants, called directly.

Every "nothing was left behind" claim is checked against PostgreSQL's own catalogs
(pg_roles, pg_namespace) and the registry, from a separate connection.
"""

from __future__ import annotations

import pytest
from flask import Flask
from flask_security import hash_password
from sqlalchemy import text
from sqlalchemy.exc import DataError, ProgrammingError

from core.db import scope_connection
from core.tenancy import Tenant, role_name, schema_name
from tenants import migrations, provisioning
from tenants.admin import admin_engine
from tenants.names import InvalidSlug, validate_slug
from tests.conftest import PASSWORD
from tests.tenants.support import EVERYTHING, NOTHING, traces


def create(app: Flask, slug: str, *, password_hash: str | None = None, **kwargs: object) -> Tenant:
    with app.app_context():
        return provisioning.create_tenant(
            admin_engine(app),
            provisioning.NewTenant(
                slug,
                f"Brokerage {slug}",
                f"Owner@{slug}.example.com",
                password_hash or hash_password(PASSWORD),
            ),
            app_role=app.config["APP_DB_ROLE"],
            role_prefix=app.config["DB_ROLE_PREFIX"],
            **kwargs,  # type: ignore[arg-type]
        )


def test_create_tenant_builds_role_schema_tables_seed_and_registry(app, new_slug):
    slug = new_slug()
    steps: list[tuple[int, str]] = []
    tenant = create(app, slug, progress=lambda pct, msg: steps.append((pct, msg)))

    assert traces(app, slug) == EVERYTHING
    assert [pct for pct, _ in steps] == [10, 40, 70, 100]
    with admin_engine(app).connect() as conn:
        role = conn.execute(
            text("SELECT rolcanlogin, rolsuper FROM pg_roles WHERE rolname = :r"),
            {"r": tenant.role},
        ).one()
        assert tuple(role) == (False, False)
        owner = conn.scalar(
            text("SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = :s"),
            {"s": tenant.schema},
        )
        assert owner.strip('"') == tenant.role
        member = conn.execute(
            text(
                "SELECT 1 FROM pg_auth_members m"
                " WHERE m.roleid = to_regrole(:tenant) AND m.member = to_regrole(:app)"
            ),
            {"tenant": f'"{tenant.role}"', "app": f'"{app.config["APP_DB_ROLE"]}"'},
        ).one_or_none()
        assert member is not None, "the application role must be a member of the tenant role"
        tables = set(
            conn.scalars(
                text("SELECT tablename FROM pg_tables WHERE schemaname = :s"),
                {"s": tenant.schema},
            )
        )
        assert {"users", "roles", "roles_users", "jobs", "alembic_version"} <= tables
        recorded = conn.execute(
            text("SELECT revision, status FROM public.tenant_migrations WHERE tenant_id = :id"),
            {"id": tenant.id},
        ).one()
        assert tuple(recorded) == (migrations.head("tenant"), "done")
    with admin_engine(app).begin() as conn:
        scope_connection(conn, tenant)
        assert conn.scalar(text("SELECT version_num FROM alembic_version")) == migrations.head()
        admins = conn.execute(
            text(
                "SELECT u.email, r.name FROM users u JOIN roles_users ru ON ru.user_id = u.id"
                " JOIN roles r ON r.id = ru.role_id"
            )
        ).all()
        assert [tuple(a) for a in admins] == [(f"owner@{slug}.example.com", "admin")]
        assert set(conn.scalars(text("SELECT name FROM roles"))) == set(provisioning.DEFAULT_ROLES)


def test_duplicate_slug_is_refused_and_the_first_tenant_is_untouched(app, new_slug):
    slug = new_slug()
    first = create(app, slug)
    with pytest.raises(provisioning.TenantExists, match="already exists"):
        create(app, slug)
    assert traces(app, slug) == EVERYTHING
    with admin_engine(app).connect() as conn:
        assert conn.scalar(text("SELECT id FROM public.tenants WHERE slug = :s"), {"s": slug}) == (
            first.id
        )


@pytest.mark.parametrize("fail_at", [40, 70])
def test_failure_after_the_schema_exists_leaves_nothing_behind(app, new_slug, fail_at):
    slug = new_slug()

    def progress(percent: int, message: str) -> None:
        # 40: role and schema created; 70: tables created and registry row flushed.
        if percent == fail_at:
            raise RuntimeError("injected failure")

    with pytest.raises(RuntimeError, match="injected failure"):
        create(app, slug, progress=progress)
    assert traces(app, slug) == NOTHING


def test_constraint_violation_in_the_admin_user_leaves_nothing_behind(app, new_slug):
    slug = new_slug()
    # users.password is VARCHAR(255): the failure comes from PostgreSQL, at the last
    # step, after role, schema, tables, seed roles and registry row were all written.
    with pytest.raises(DataError):
        create(app, slug, password_hash="x" * 300)
    assert traces(app, slug) == NOTHING


def test_failure_creating_the_schema_drops_the_new_role_but_not_foreign_objects(app, new_slug):
    slug = new_slug()
    with admin_engine(app).begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema_name(slug)}"'))
        conn.execute(text(f'CREATE TABLE "{schema_name(slug)}".keep_me (id int)'))
    with pytest.raises(ProgrammingError, match="already exists"):
        create(app, slug)
    assert traces(app, slug) == {"role": False, "schema": True, "registry": False}
    with admin_engine(app).connect() as conn:
        assert conn.scalar(text("SELECT to_regclass(:t)"), {"t": f"{schema_name(slug)}.keep_me"})


def test_an_existing_database_role_is_never_adopted(app, new_slug):
    slug = new_slug()
    role = role_name(slug, app.config["DB_ROLE_PREFIX"])
    with admin_engine(app).begin() as conn:
        conn.execute(text(f'CREATE ROLE "{role}" NOLOGIN'))
    with pytest.raises(provisioning.TenantExists, match="role"):
        create(app, slug)
    assert traces(app, slug) == {"role": True, "schema": False, "registry": False}


def test_delete_drops_schema_role_registry_and_dependent_rows(app, new_slug):
    slug = new_slug()
    tenant = create(app, slug)
    with admin_engine(app).begin() as conn:
        conn.execute(
            text("INSERT INTO public.tenant_plugins (tenant_id, plugin) VALUES (:id, 'x')"),
            {"id": tenant.id},
        )
    provisioning.delete_tenant(admin_engine(app), slug)
    assert traces(app, slug) == NOTHING
    with admin_engine(app).connect() as conn:
        for table in ("tenant_plugins", "tenant_migrations"):
            count = conn.scalar(
                text(f"SELECT count(*) FROM public.{table} WHERE tenant_id = :id"),
                {"id": tenant.id},
            )
            assert count == 0, table


def test_delete_works_when_the_role_was_already_dropped_by_hand(app, new_slug):
    slug = new_slug()
    tenant = create(app, slug)
    with admin_engine(app).begin() as conn:
        conn.execute(text(f'ALTER SCHEMA "{tenant.schema}" OWNER TO CURRENT_USER'))
        conn.execute(text(f'DROP OWNED BY "{tenant.role}"'))
        conn.execute(text(f'DROP ROLE "{tenant.role}"'))
    provisioning.delete_tenant(admin_engine(app), slug)
    assert traces(app, slug) == NOTHING


def test_status_changes_and_deletes_of_unknown_slugs_are_refused(app):
    engine = admin_engine(app)
    with pytest.raises(provisioning.TenantNotFound):
        provisioning.set_status(engine, "no-such-tenant", "suspended")
    with pytest.raises(provisioning.TenantNotFound):
        provisioning.delete_tenant(engine, "no-such-tenant")


@pytest.mark.parametrize(
    "slug", ["abc", "acme", "acme-re", "a1-2b", "x" * 40, "wwwx", "apis", "mailer", "p-g"]
)
def test_valid_slugs(slug):
    assert validate_slug(slug) == slug


@pytest.mark.parametrize(
    ("slug", "reason"),
    [
        ("", "required"),
        ("ab", "3-40"),
        ("x" * 41, "3-40"),
        ("1acme", "starting with a letter"),
        ("-acme", "starting with a letter"),
        ("Acme", "3-40"),
        ("acme_re", "3-40"),
        ("acme re", "3-40"),
        ("acmé", "3-40"),
        ("acme.re", "3-40"),
        ("acme-", "may not end"),
        ("ac--me", "'--'"),
        ("acme\n", "3-40"),
        *[(word, "reserved") for word in ("www", "api", "admin", "app", "public", "static")],
        ("mail", "reserved"),
        ("pga", "'pg'"),
        ("pg-acme", "'pg'"),
        ("pgbouncer", "'pg'"),
    ],
)
def test_invalid_slugs_are_refused_with_the_reason(slug, reason):
    with pytest.raises(InvalidSlug, match=reason):
        validate_slug(slug)
