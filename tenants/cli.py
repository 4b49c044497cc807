"""`powerbuyer tenants ...` and `powerbuyer db ...`."""

from __future__ import annotations

import sys

import click
from flask import Flask, current_app
from flask.cli import AppGroup
from flask_security import hash_password

from tenants import migrations, provisioning, registry, runner
from tenants.admin import admin_engine
from tenants.models import APP_ROLE_GRANTS
from tenants.names import InvalidSlug

tenants_cli = AppGroup("tenants", help="Create, list, suspend, delete and migrate tenants.")
db_cli = AppGroup("db", help="The shared (public) schema.")


def _fail(message: str) -> None:
    click.echo(f"Error: {message}", err=True)
    sys.exit(1)


@db_cli.command("upgrade")
def db_upgrade() -> None:
    """Bring the public schema to head (idempotent)."""
    upgrade_public(current_app)
    click.echo("public schema at head")


def upgrade_public(app: Flask) -> None:
    with admin_engine(app).begin() as conn:
        migrations.upgrade_shared(conn, app.config["APP_DB_ROLE"], APP_ROLE_GRANTS)


@tenants_cli.command("create")
@click.argument("slug")
@click.option("--name", required=True, help="The brokerage's name.")
@click.option("--admin-email", required=True)
@click.option("--admin-password", required=True)
def create(slug: str, name: str, admin_email: str, admin_password: str) -> None:
    """Provision a tenant: role, schema at head, default roles and an admin user."""
    try:
        tenant = provisioning.create_tenant(
            admin_engine(current_app),
            provisioning.NewTenant(slug, name, admin_email, hash_password(admin_password)),
            app_role=current_app.config["APP_DB_ROLE"],
            role_prefix=current_app.config["DB_ROLE_PREFIX"],
        )
    except (InvalidSlug, provisioning.TenantExists, ValueError) as exc:
        _fail(str(exc))
    scheme = current_app.config["PREFERRED_URL_SCHEME"]
    click.echo(
        f"created tenant {tenant.slug}: {scheme}://{tenant.slug}.{current_app.config['SERVER_NAME']}/login"
    )


@tenants_cli.command("list")
def list_tenants() -> None:
    """Slug, name, status, schema revision and creation date of every tenant."""
    rows = runner.status_rows(admin_engine(current_app))
    click.echo(f"{'slug':<24} {'name':<30} {'status':<10} {'revision':<14} created")
    for row in rows:
        click.echo(
            f"{row.slug:<24} {row.name[:30]:<30} {row.status:<10} {row.revision or '-':<14} "
            f"{row.created_at:%Y-%m-%d %H:%M}"
        )


def _set_status(slug: str, status: str) -> None:
    try:
        provisioning.set_status(admin_engine(current_app), slug, status)
    except provisioning.TenantNotFound as exc:
        _fail(str(exc))
    click.echo(f"tenant {slug} is {status}")


@tenants_cli.command("suspend")
@click.argument("slug")
def suspend(slug: str) -> None:
    """Refuse every request to the tenant's host with 403 until resumed."""
    _set_status(slug, "suspended")


@tenants_cli.command("resume")
@click.argument("slug")
def resume(slug: str) -> None:
    """Lift a suspension."""
    _set_status(slug, "active")


@tenants_cli.command("delete")
@click.argument("slug")
@click.option("--confirm", required=True, help="Repeat the slug to confirm.")
def delete(slug: str, confirm: str) -> None:
    """Drop the tenant's schema and role and remove it from the registry."""
    if confirm != slug:
        _fail(f"--confirm must repeat the slug ({slug}); nothing was deleted")
    try:
        provisioning.delete_tenant(admin_engine(current_app), slug)
    except provisioning.TenantNotFound as exc:
        _fail(str(exc))
    click.echo(f"deleted tenant {slug}")


@tenants_cli.command("migrate")
@click.option("--jobs", "-j", default=4, show_default=True, help="Parallel processes.")
@click.option("--check", is_flag=True, help="Only check that every schema is at head.")
def migrate(jobs: int, check: bool) -> None:
    """Upgrade every tenant schema to head, in parallel, one transaction per tenant."""
    engine = admin_engine(current_app)
    target = migrations.head("tenant")
    if check:
        behind = runner.behind(engine, target)
        for slug, revision in behind:
            click.echo(f"{slug}: at {revision or 'nothing'}, head is {target}", err=True)
        if behind:
            sys.exit(1)
        click.echo(f"every tenant schema is at {target}")
        return
    tenants = registry.all_tenants(engine)
    results = runner.migrate_all(current_app.config["DATABASE_ADMIN_URL"], tenants, jobs=jobs)
    failed = [r for r in results if r.error]
    for result in results:
        state = f"FAILED: {result.error}" if result.error else f"at {result.revision}"
        click.echo(f"{result.slug}: {state}")
    if failed:
        _fail("migration failed for " + ", ".join(r.slug for r in failed))
    click.echo(f"{len(results)} tenant(s) at {target}")


def init_app(app: Flask) -> None:
    app.cli.add_command(tenants_cli)
    app.cli.add_command(db_cli)
