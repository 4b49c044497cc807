"""`powerbuyer keys rotate --tenant SLUG [--new-data-key]`: re-wrap a tenant's data keys."""

from __future__ import annotations

import sys

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from core import audit
from core.security import crypto

keys_cli = AppGroup("keys", help="Per-tenant encryption keys (docs/personal-data.md).")


@keys_cli.command("rotate")
@click.option("--tenant", "slug", required=True, metavar="SLUG", help="The tenant.")
@click.option(
    "--new-data-key",
    is_flag=True,
    help="Also start a new data key for new writes; existing values stay readable.",
)
def rotate(slug: str, new_data_key: bool) -> None:
    """Re-wrap the tenant's keys under MASTER_KEY (unwrapping with MASTER_KEY_PREVIOUS
    where the previous master key wrapped them). Audited as keys.rotate."""
    tenant = current_app.extensions["powerbuyer.tenants"].by_slug(slug)
    if tenant is None:
        click.echo(f"Error: no tenant with slug {slug!r}", err=True)
        sys.exit(1)
    try:
        with audit.acting_as("cli:keys-rotate"):
            result = crypto.rotate(tenant, new_data_key=new_data_key)
    except crypto.KeyUnavailable as exc:
        click.echo(f"Error: {exc}; nothing was changed", err=True)
        sys.exit(1)
    click.echo(
        f"tenant {tenant.slug}: {result.rewrapped} key(s) wrapped under master key "
        f"{result.master_kid}"
        + (f"; new data key {result.new_data_key} for new writes" if result.new_data_key else "")
    )


def init_app(app: Flask) -> None:
    app.cli.add_command(keys_cli)
