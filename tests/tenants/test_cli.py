"""`powerbuyer tenants create | list | suspend | resume | delete`, through the CLI.

Refusals must exit non-zero with a clear message and leave nothing behind; what is
left is read from PostgreSQL's catalogs, not from the command's output.
"""

from __future__ import annotations

import psycopg
import pytest
from click.testing import Result
from flask import Flask
from psycopg import sql
from sqlalchemy import text
from sqlalchemy.engine import make_url

from core.tenancy import schema_name
from tenants import migrations
from tenants.admin import admin_engine
from tests.conftest import PASSWORD, host_client
from tests.tenants.support import EVERYTHING, NOTHING, traces


def tenants(app: Flask, *args: str) -> Result:
    return app.test_cli_runner().invoke(args=["tenants", *args])


def create(app: Flask, slug: str) -> Result:
    # `--` so that a slug such as "-acme" reaches the command as the slug.
    return tenants(
        app,
        "create",
        "--name",
        f"Brokerage {slug}",
        "--admin-email",
        f"owner@{slug}.example.com",
        "--admin-password",
        PASSWORD,
        "--",
        slug,
    )


def login(app: Flask, slug: str, email: str, password: str) -> int:
    client = host_client(app, slug)
    response = client.post("/login", data={"email": email, "password": password})
    return response.status_code


def test_create_provisions_a_tenant_whose_admin_can_log_in(app, new_slug):
    slug = new_slug("cli")
    result = create(app, slug)

    assert result.exit_code == 0, result.output
    assert f"http://{slug}.localhost:5000/login" in result.output
    assert traces(app, slug) == EVERYTHING
    assert host_client(app, slug).get("/login").status_code == 200
    # Flask-Security redirects after a good password and re-renders the form (422) otherwise.
    assert login(app, slug, f"owner@{slug}.example.com", PASSWORD) == 302
    assert login(app, slug, f"owner@{slug}.example.com", "wrong password!") == 422


@pytest.mark.parametrize(
    "slug", ["ab", "x" * 41, "1acme", "-acme", "Acme", "acme_re", "acme.re", "acme-"]
)
def test_create_refuses_malformed_slugs(app, slug):
    result = create(app, slug)
    assert result.exit_code != 0
    assert "Error: slug" in result.output
    assert "created tenant" not in result.output
    with admin_engine(app).connect() as conn:
        assert not conn.scalar(
            text("SELECT count(*) FROM public.tenants WHERE slug = :s"), {"s": slug}
        )


@pytest.mark.parametrize(
    "slug", ["www", "api", "admin", "app", "public", "static", "mail", "pga", "pg-acme"]
)
def test_create_refuses_reserved_slugs(app, slug):
    result = create(app, slug)
    assert result.exit_code != 0
    assert "Error: slug" in result.output
    assert "reserved" in result.output or "may not start with 'pg'" in result.output
    with admin_engine(app).connect() as conn:
        assert not conn.scalar(
            text("SELECT count(*) FROM public.tenants WHERE slug = :s"), {"s": slug}
        )
        assert not conn.scalar(
            text("SELECT count(*) FROM pg_namespace WHERE nspname = :s"),
            {"s": "t_" + slug.replace("-", "_")},
        )


def test_create_refuses_a_duplicate_slug_and_keeps_the_original(app, new_slug):
    slug = new_slug("cli")
    assert create(app, slug).exit_code == 0

    again = tenants(
        app,
        "create",
        slug,
        "--name",
        "Impostor",
        "--admin-email",
        "impostor@example.com",
        "--admin-password",
        PASSWORD,
    )
    assert again.exit_code != 0
    assert f"a tenant with slug '{slug}' already exists" in again.output
    with admin_engine(app).connect() as conn:
        name = conn.scalar(text("SELECT name FROM public.tenants WHERE slug = :s"), {"s": slug})
    assert name == f"Brokerage {slug}"
    assert login(app, slug, "impostor@example.com", PASSWORD) == 422
    assert login(app, slug, f"owner@{slug}.example.com", PASSWORD) == 302


def test_create_that_fails_halfway_exits_non_zero_and_leaves_nothing(app, new_slug):
    slug = new_slug("cli")
    # A stray schema of that name makes CREATE SCHEMA fail after the role was created.
    with admin_engine(app).begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema_name(slug)}"'))

    result = create(app, slug)
    assert result.exit_code == 1
    assert f"provisioning {slug} failed and was rolled back" in result.output
    assert "already exists" in result.output
    assert "Traceback" not in result.output
    assert traces(app, slug) == {"role": False, "schema": True, "registry": False}


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--admin-email", "not-an-email", "not a valid email address"),
        ("--admin-email", "a" * 250 + "@example.com", "not a valid email address"),
        ("--admin-password", "short", "at least 12 characters"),
        ("--name", "   ", "a name is required"),
    ],
)
def test_create_refuses_bad_admin_details(app, new_slug, option, value, message):
    slug = new_slug("cli")
    values = {
        "--name": "Brokerage",
        "--admin-email": f"owner@{slug}.example.com",
        "--admin-password": PASSWORD,
        option: value,
    }
    result = tenants(app, "create", slug, *[item for pair in values.items() for item in pair])
    assert result.exit_code == 1
    assert message in result.output
    assert traces(app, slug) == NOTHING


def test_list_shows_slug_name_status_revision_and_created(app, alpha, new_slug):
    slug = new_slug("cli")
    assert create(app, slug).exit_code == 0
    tenants(app, "suspend", slug)

    result = tenants(app, "list")
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0].split() == ["slug", "name", "status", "revision", "migration", "created"]
    rows = {line.split()[0]: line for line in lines[1:]}
    head = migrations.head("tenant")
    assert rows["alpha"].split()[:5] == ["alpha", "Alpha", "active", head, "done"]
    mine = rows[slug]
    assert f"Brokerage {slug}" in mine
    assert mine.split()[3:6] == ["suspended", head, "done"]
    assert mine.split()[6] == _created(app, slug)


def _created(app: Flask, slug: str) -> str:
    with admin_engine(app).connect() as conn:
        created = conn.scalar(
            text("SELECT created_at FROM public.tenants WHERE slug = :s"), {"s": slug}
        )
    return f"{created:%Y-%m-%d}"


def test_list_shows_the_schemas_actual_revision(app, new_slug):
    slug = new_slug("cli")
    assert create(app, slug).exit_code == 0
    with admin_engine(app).begin() as conn:
        conn.execute(text(f'DROP TABLE "{schema_name(slug)}".alembic_version'))
    row = next(line for line in tenants(app, "list").output.splitlines() if line.startswith(slug))
    assert row.split()[4] == "-"


def test_suspend_answers_403_and_resume_answers_200(app, new_slug):
    slug = new_slug("cli")
    assert create(app, slug).exit_code == 0
    client = host_client(app, slug)
    assert client.get("/login").status_code == 200

    result = tenants(app, "suspend", slug)
    assert result.exit_code == 0
    assert f"tenant {slug} is suspended" in result.output
    assert client.get("/login").status_code == 403
    assert login(app, slug, f"owner@{slug}.example.com", PASSWORD) == 403

    result = tenants(app, "resume", slug)
    assert result.exit_code == 0
    assert f"tenant {slug} is active" in result.output
    assert client.get("/login").status_code == 200


@pytest.mark.parametrize("command", ["suspend", "resume"])
def test_suspend_and_resume_refuse_an_unknown_slug(app, command):
    result = tenants(app, command, "no-such-tenant")
    assert result.exit_code == 1
    assert "no tenant with slug 'no-such-tenant'" in result.output


def test_delete_with_a_wrong_confirmation_drops_nothing(app, new_slug):
    slug = new_slug("cli")
    assert create(app, slug).exit_code == 0

    for confirm in ("yes", slug.upper(), slug + "x"):
        result = tenants(app, "delete", slug, "--confirm", confirm)
        assert result.exit_code == 1
        assert "nothing was deleted" in result.output
    result = tenants(app, "delete", slug)
    assert result.exit_code != 0
    assert "--confirm" in result.output

    assert traces(app, slug) == EVERYTHING
    assert login(app, slug, f"owner@{slug}.example.com", PASSWORD) == 302


def test_delete_drops_schema_role_and_registry_row(app, new_slug):
    slug = new_slug("cli")
    assert create(app, slug).exit_code == 0

    result = tenants(app, "delete", slug, "--confirm", slug)
    assert result.exit_code == 0, result.output
    assert f"deleted tenant {slug}" in result.output
    assert traces(app, slug) == NOTHING
    assert host_client(app, slug).get("/login").status_code == 404
    assert slug not in tenants(app, "list").output


def test_delete_that_fails_is_rolled_back_and_says_so(app, new_slug):
    slug = new_slug("cli")
    assert create(app, slug).exit_code == 0
    role = f"{app.config['DB_ROLE_PREFIX']}{schema_name(slug)}"
    # A database the tenant role owns: DROP OWNED BY leaves it, so DROP ROLE fails
    # after DROP SCHEMA already ran in the same transaction.
    url = make_url(app.config["DATABASE_ADMIN_URL"]).set(drivername="postgresql")
    database = f"{url.database}_{schema_name(slug)}"
    with psycopg.connect(url.render_as_string(hide_password=False), autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(database), sql.Identifier(role)
            )
        )
        try:
            result = tenants(app, "delete", slug, "--confirm", slug)
        finally:
            conn.execute(sql.SQL("DROP DATABASE {}").format(sql.Identifier(database)))
    assert result.exit_code == 1
    assert f"deleting {slug} failed and was rolled back, nothing was deleted" in result.output
    assert "Traceback" not in result.output
    assert traces(app, slug) == EVERYTHING
    assert login(app, slug, f"owner@{slug}.example.com", PASSWORD) == 302


def test_delete_refuses_an_unknown_slug(app):
    result = tenants(app, "delete", "no-such-tenant", "--confirm", "no-such-tenant")
    assert result.exit_code == 1
    assert "no tenant with slug 'no-such-tenant'" in result.output
