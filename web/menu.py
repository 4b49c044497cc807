"""The staff navigation: the app's own entries plus those of the tenant's plugins.

Plugins contribute `MenuItem`s through the `powerbuyer_menu_items` hook; only plugins
the tenant enabled are asked. Permission filtering arrives with roles and permissions
(the identity issue); until then every entry shows to a signed-in user.
"""

from __future__ import annotations

import logging

from flask import Flask, current_app, g

from core import plugins
from core.hookspecs import MenuItem

log = logging.getLogger(__name__)


def menu_items() -> list[MenuItem]:
    """The entries for the current tenant, in order; computed once per request."""
    if "menu_items" not in g:
        items = [
            item
            for contributed in plugins.call("powerbuyer_menu_items")
            for item in contributed
            if _routable(item)
        ]
        g.menu_items = sorted(items, key=lambda item: (item.section, item.order, item.label))
    return g.menu_items


def _routable(item: MenuItem) -> bool:
    if item.endpoint in current_app.view_functions:
        return True
    log.warning("menu entry %r points at unknown endpoint %r; hidden", item.label, item.endpoint)
    return False


def init_app(app: Flask) -> None:
    app.jinja_env.globals["menu_items"] = menu_items
