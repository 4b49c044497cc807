"""A managed-cloud style setup: DATABASE_URL is a CREATEROLE role that owns the
database but is not a superuser. The app must still create its own unprivileged login
role, provision tenants and keep them isolated."""

from __future__ import annotations

import psycopg
import pytest
from flask_security import hash_password
from psycopg import sql
from sqlalchemy import text
from sqlalchemy.engine import make_url

from core.app import create_app
from core.db import db
from core.tenancy import tenant_context
from tenants import provisioning, registry
from tenants.admin import admin_engine
from tenants.cli import upgrade_public


@pytest.fixture
def creator_url(app_config: dict):
    url = make_url(app_config["DATABASE_URL"]).set(drivername="postgresql")
    creator = app_config["DB_ROLE_PREFIX"] + "creator"
    database = f"{url.database}_cr"
    maintenance = url.set(database="postgres").render_as_string(hide_password=False)

    def drop(conn: psycopg.Connection) -> None:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database))
        )
        prefix = app_config["DB_ROLE_PREFIX"] + "cr_"
        for (role,) in conn.execute(
            "SELECT rolname FROM pg_roles WHERE starts_with(rolname, %s)", (prefix,)
        ).fetchall():
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
        conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(creator)))

    with psycopg.connect(maintenance, autocommit=True) as conn:
        drop(conn)
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN CREATEROLE").format(sql.Identifier(creator)))
        conn.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(database), sql.Identifier(creator)
            )
        )
    yield url.set(database=database, username=creator).render_as_string(hide_password=False)
    with psycopg.connect(maintenance, autocommit=True) as conn:
        drop(conn)


def test_createrole_admin_provisions_isolated_tenants(app_config: dict, creator_url: str):
    prefix = app_config["DB_ROLE_PREFIX"] + "cr_"
    app = create_app(
        {
            **app_config,
            "DATABASE_URL": creator_url,
            "DB_ROLE_PREFIX": prefix,
            "APP_DB_ROLE": prefix + "app",
        }
    )
    upgrade_public(app)
    with app.app_context():
        for slug in ("gamma", "delta"):
            provisioning.create_tenant(
                admin_engine(app),
                provisioning.NewTenant(
                    slug, slug, f"admin@{slug}.example.com", hash_password("x" * 12)
                ),
                app_role=prefix + "app",
                role_prefix=prefix,
            )
        gamma = registry.by_slug(db.engine, "gamma")
        with db.engine.connect() as conn:
            assert conn.execute(text("SELECT current_user")).scalar() == prefix + "app"
        with tenant_context(gamma):
            assert db.session.execute(text("SELECT email FROM users")).scalars().all() == [
                "admin@gamma.example.com"
            ]
            with pytest.raises(Exception, match="permission denied"):
                db.session.execute(text("SELECT * FROM t_delta.users")).all()
            db.session.rollback()
