"""`powerbuyer tenants ...` and `powerbuyer db ...`."""

from __future__ import annotations

import sys
from typing import NoReturn

import click
from email_validator import EmailNotValidError, validate_email
from flask import Flask, current_app
from flask.cli import AppGroup
from sqlalchemy.exc import SQLAlchemyError

from core.security import passwords
from core.tenancy import Tenant
from tenants import migrations, provisioning, registry, runner
from tenants.admin import admin_engine
from tenants.models import APP_ROLE_GRANTS
from tenants.names import InvalidSlug, validate_slug

tenants_cli = AppGroup("tenants", help="Create, list, suspend, delete and migrate tenants.")
db_cli = AppGroup("db", help="The shared (public) schema.")


def _fail(message: str) -> NoReturn:
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
        validate_slug(slug)
    except InvalidSlug as exc:
        _fail(str(exc))
    try:
        email = validate_email(admin_email, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        _fail(f"--admin-email {admin_email!r} is not a valid email address: {exc}")
    try:
        password_hash = passwords.hash_new(admin_password, email=email, name=name)
    except passwords.PasswordRejected as exc:
        _fail(f"--admin-password is not acceptable: {exc}")
    try:
        tenant = provisioning.create_tenant(
            admin_engine(current_app),
            provisioning.NewTenant(slug, name, email, password_hash),
            app_role=current_app.config["APP_DB_ROLE"],
            role_prefix=current_app.config["DB_ROLE_PREFIX"],
        )
    except (provisioning.TenantExists, ValueError) as exc:
        _fail(str(exc))
    except SQLAlchemyError as exc:
        # Provisioning is one transaction: whatever step failed, nothing was kept.
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        _fail(f"provisioning {slug} failed and was rolled back, nothing was created: {reason}")
    scheme = current_app.config["PREFERRED_URL_SCHEME"]
    click.echo(
        f"created tenant {tenant.slug}: "
        f"{scheme}://{tenant.slug}.{current_app.config['SERVER_NAME']}/login"
    )


@tenants_cli.command("list")
def list_tenants() -> None:
    """Slug, name, status, schema revision, last migration run and creation date."""
    rows = runner.status_rows(admin_engine(current_app))
    click.echo(
        f"{'slug':<40} {'name':<30} {'status':<10} {'revision':<20} {'migration':<10} created"
    )
    for row in rows:
        click.echo(
            f"{row.slug:<40} {row.name[:30]:<30} {row.status:<10} {row.revision or '-':<20} "
            f"{row.migration or '-':<10} {row.created_at:%Y-%m-%d %H:%M}"
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
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        _fail(f"deleting {slug} failed and was rolled back, nothing was deleted: {reason}")
    click.echo(f"deleted tenant {slug}")


def _selected(slugs: tuple[str, ...]) -> list[Tenant]:
    tenants = registry.all_tenants(admin_engine(current_app))
    if not slugs:
        return tenants
    unknown = sorted(set(slugs) - {t.slug for t in tenants})
    if unknown:
        _fail("no tenant with slug " + ", ".join(unknown))
    return [t for t in tenants if t.slug in slugs]


@tenants_cli.command("migrate")
@click.option("--jobs", "-j", default=4, show_default=True, help="Parallel processes.")
@click.option("--check", is_flag=True, help="Only check that every schema is at head.")
@click.option(
    "--tenant",
    "slugs",
    multiple=True,
    metavar="SLUG",
    help="Only this tenant (repeatable); every tenant by default.",
)
def migrate(jobs: int, check: bool, slugs: tuple[str, ...]) -> None:
    """Upgrade every tenant schema to head, in parallel, one transaction per tenant.

    Resumable: tenants already at head are skipped, so after a failure, fixing the
    cause and running again migrates only what is left.
    """
    engine = admin_engine(current_app)
    target = migrations.head("tenant")
    tenants = _selected(slugs)
    if check:
        late = runner.behind(engine, tenants, target)
        for slug, revision in late:
            click.echo(f"{slug}: at {revision or 'nothing'}, head is {target}", err=True)
        if late:
            _fail(f"{len(late)} of {len(tenants)} tenant schema(s) not at head {target}")
        click.echo(f"all {len(tenants)} tenant schema(s) at {target}")
        return
    todo = runner.pending(engine, tenants, target)
    results = runner.migrate_all(current_app.config["DATABASE_ADMIN_URL"], todo, jobs=jobs)
    for result in results:
        state = f"FAILED: {result.error}" if result.error else f"at {result.revision}"
        click.echo(f"{result.slug}: {state}")
    failed = [r.slug for r in results if r.error]
    if failed:
        _fail(f"migration failed for {', '.join(failed)}; fix and run again to resume")
    click.echo(
        f"{len(results)} tenant(s) migrated, {len(tenants) - len(results)} already at {target}"
    )


def init_app(app: Flask) -> None:
    app.cli.add_command(tenants_cli)
    app.cli.add_command(db_cli)
