"""The staff navigation: the app's own entries plus those of the tenant's plugins.

The app's screens add theirs with `add_item(app, item)` at start-up; plugins contribute
`MenuItem`s through the `powerbuyer_menu_items` hook, and only plugins the tenant
enabled are asked. An entry with a `permission` shows only to users holding it.
"""

from __future__ import annotations

import logging

from flask import Flask, current_app, g
from flask_login import current_user

from core import plugins
from core.hookspecs import MenuItem
from core.security.authz import has_permission

log = logging.getLogger(__name__)


def menu_items() -> list[MenuItem]:
    """The entries for the current tenant, in order; computed once per request."""
    if "menu_items" not in g:
        contributed = [item for items in plugins.call("powerbuyer_menu_items") for item in items]
        items = [
            item
            for item in [*current_app.extensions[_APP_ITEMS], *contributed]
            if _routable(item) and _allowed(item)
        ]
        g.menu_items = sorted(items, key=lambda item: (item.section, item.order, item.label))
    return g.menu_items


_APP_ITEMS = "powerbuyer.menu_items"


def add_item(app: Flask, item: MenuItem) -> None:
    """Add one of the app's own screens to the navigation."""
    app.extensions.setdefault(_APP_ITEMS, []).append(item)


def _allowed(item: MenuItem) -> bool:
    return item.permission is None or has_permission(current_user, item.permission)


def _routable(item: MenuItem) -> bool:
    if item.endpoint in current_app.view_functions:
        return True
    log.warning("menu entry %r points at unknown endpoint %r; hidden", item.label, item.endpoint)
    return False


def init_app(app: Flask) -> None:
    app.extensions.setdefault(_APP_ITEMS, [])
    app.jinja_env.globals["menu_items"] = menu_items
