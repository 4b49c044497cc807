"""`powerbuyer audit verify --tenant SLUG`: check a tenant's audit hash chain."""

from __future__ import annotations

import re
import sys

import click
from flask import current_app
from flask.cli import AppGroup

from core import audit
from core.db import db

audit_cli = AppGroup("audit", help="The tenants' audit trails.")

_ANCHOR = re.compile(r"^(\d+):([0-9a-f]{64})$")


def _anchor(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> dict[int, str]:
    anchors: dict[int, str] = {}
    for value in values:
        match = _ANCHOR.fullmatch(value.strip().lower())
        if match is None:
            raise click.BadParameter(f"{value!r} is not ID:HASH (a row id and 64 hex digits)")
        anchors[int(match[1])] = match[2]
    return anchors


@audit_cli.command("verify")
@click.option("--tenant", "slug", required=True, metavar="SLUG", help="The tenant to check.")
@click.option(
    "--anchor",
    "anchors",
    multiple=True,
    callback=_anchor,
    metavar="ID:HASH",
    help="A row's hash recorded elsewhere earlier (repeatable); it must still match.",
)
def verify(slug: str, anchors: dict[int, str]) -> None:
    """Recompute every hash of the tenant's audit log; exit 1 naming the first broken row."""
    tenant = current_app.extensions["powerbuyer.tenants"].by_slug(slug)
    if tenant is None:
        click.echo(f"Error: no tenant with slug {slug!r}", err=True)
        sys.exit(1)
    report = audit.verify_tenant(db.engine, tenant, anchors)
    if report.intact:
        click.echo(f"{report.entries} entries, chain intact")
        click.echo(f"head: id {report.head_id} hash {report.head_hash}")
        return
    click.echo(
        f"chain broken at row {report.broken_id}: {report.problem} ({report.detail}); "
        f"{report.entries} entries read",
        err=True,
    )
    sys.exit(1)
