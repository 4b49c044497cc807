"""Accounts on tenant hosts: your own account, the users and invitations screens, the
security settings, and the page where an invited person sets their password.

Also two request guards that run on every tenant request after the tenant is known
(this component loads after the tenant resolver): a signed-in session must still be
registered (core.security.sessions), and a user whose role requires two-factor
authentication is sent to set it up before anything else.
"""

from __future__ import annotations

from flask import Flask

from core.hookspecs import MenuItem
from web import hosts, menu
from web.account import guards, invitations, profile, security_settings, users


def init_app(app: Flask) -> None:
    guards.init_app(app)
    for blueprint in (profile.bp, users.bp, security_settings.bp, invitations.bp):
        hosts.tenant_only(app, blueprint.name)
        app.register_blueprint(blueprint)
    menu.add_item(
        app,
        MenuItem("Users", "users.index", section="settings", permission="settings:read", order=10),
    )
    menu.add_item(
        app,
        MenuItem(
            "Security",
            "security_settings.show",
            section="settings",
            permission="settings:read",
            order=30,
        ),
    )
