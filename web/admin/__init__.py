"""Tenant administration screens, on tenant hosts only: roles and their permissions."""

from __future__ import annotations

from flask import Flask

from core.hookspecs import MenuItem
from web import hosts, menu
from web.admin import roles


def init_app(app: Flask) -> None:
    hosts.tenant_only(app, roles.bp.name)
    app.register_blueprint(roles.bp)
    menu.add_item(
        app,
        MenuItem("Roles", "roles.index", section="settings", permission="settings:read", order=20),
    )
