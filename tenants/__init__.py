"""Tenant registry, host resolution, provisioning and the migration runner.

`init_app` installs host -> tenant resolution as the first thing each request does,
and the `powerbuyer tenants` / `powerbuyer db` command groups.
"""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from tenants import cli, plugin_cli, resolver

    resolver.init_app(app)
    cli.init_app(app)
    plugin_cli.init_app(app)
