"""`powerbuyer plugins list|enable|disable`: what is installed, and who uses it.

Installed is not enabled: `enable` adds a row to `public.tenant_plugins` for one
tenant, `disable` removes it. Both go through the privileged connection, since the
application role may only read the registry.
"""

from __future__ import annotations

import click
from flask import Flask, current_app
from flask.cli import AppGroup
from sqlalchemy import Engine, delete
from sqlalchemy.dialects.postgresql import insert

from core import plugins
from core.db import db
from core.tenancy import Tenant
from tenants import registry
from tenants.admin import admin_engine
from tenants.models import TenantPlugin

plugins_cli = AppGroup("plugins", help="Installed plugins and the tenants that enabled them.")


def enable_plugin(engine: Engine, tenant: Tenant, plugin: str) -> bool:
    """Enable `plugin` for `tenant`; False when it already was."""
    with engine.begin() as conn:
        inserted = conn.execute(
            insert(TenantPlugin)
            .values(tenant_id=tenant.id, plugin=plugin)
            .on_conflict_do_nothing(index_elements=["tenant_id", "plugin"])
            .returning(TenantPlugin.plugin)
        ).first()
    registry.changed()
    return inserted is not None


def disable_plugin(engine: Engine, tenant: Tenant, plugin: str) -> bool:
    """Disable `plugin` for `tenant`; False when it was not enabled."""
    with engine.begin() as conn:
        deleted = conn.execute(
            delete(TenantPlugin).where(
                TenantPlugin.tenant_id == tenant.id, TenantPlugin.plugin == plugin
            )
        )
    registry.changed()
    return deleted.rowcount == 1


def _tenant(slug: str) -> Tenant:
    tenant = registry.by_slug(db.engine, slug)
    if tenant is None:
        raise click.ClickException(f"no tenant has the slug {slug!r}")
    return tenant


def _installed_names() -> str:
    return ", ".join(plugins.manager(current_app).names()) or "none"


@plugins_cli.command("list")
def list_plugins() -> None:
    """Name, version, distribution, enabled tenants and load error of every plugin."""
    infos = plugins.manager(current_app).describe(registry.all_tenants(db.engine))
    if not infos:
        click.echo("no plugins installed")
        return
    click.echo(f"{'name':<24} {'version':<10} {'distribution':<28} enabled tenants")
    for info in infos:
        click.echo(
            f"{info.name:<24} {info.version or '-':<10} {info.distribution or '-':<28} "
            f"{', '.join(info.enabled_tenants) or '-'}"
        )
        if info.error:
            click.echo(f"    error: {info.error}")


@plugins_cli.command("enable")
@click.argument("name")
@click.option("--tenant", "slug", required=True, help="The tenant's slug.")
def enable(name: str, slug: str) -> None:
    """Enable an installed plugin for one tenant."""
    host = plugins.manager(current_app)
    record = host.record(name)
    if record is None:
        raise click.ClickException(
            f"no plugin named {name!r} is installed (installed: {_installed_names()})"
        )
    if record.load_error:
        raise click.ClickException(f"plugin {name} failed to load: {record.load_error}")
    tenant = _tenant(slug)
    if enable_plugin(admin_engine(current_app), tenant, name):
        click.echo(f"plugin {name} enabled for tenant {slug}")
    else:
        click.echo(f"plugin {name} was already enabled for tenant {slug}")


@plugins_cli.command("disable")
@click.argument("name")
@click.option("--tenant", "slug", required=True, help="The tenant's slug.")
def disable(name: str, slug: str) -> None:
    """Disable a plugin for one tenant (also one that is no longer installed)."""
    tenant = _tenant(slug)
    if name in plugins.manager(current_app).always_enabled:
        raise click.ClickException(
            f"plugin {name!r} is enabled for every tenant (PLUGINS_ALWAYS_ENABLED) "
            "and cannot be disabled for one"
        )
    if plugins.manager(current_app).record(name) is None and name not in tenant.enabled_plugins:
        raise click.ClickException(
            f"no plugin named {name!r} is installed or enabled for tenant {slug} "
            f"(installed: {_installed_names()})"
        )
    if disable_plugin(admin_engine(current_app), tenant, name):
        click.echo(f"plugin {name} disabled for tenant {slug}")
    else:
        click.echo(f"plugin {name} was not enabled for tenant {slug}")


def init_app(app: Flask) -> None:
    app.cli.add_command(plugins_cli)
