"""Plugins' navigation entries show only on the hosts of tenants that enabled them."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest
from flask import Flask

from core import plugins
from core.hookspecs import MenuItem, hookimpl
from tenants import registry
from tests.conftest import PASSWORD, host_client

PLUGIN = "pbtest_menu"


class MenuPlugin:
    @hookimpl
    def powerbuyer_menu_items(self) -> list[MenuItem]:
        return [
            MenuItem("Travel quotes", "site.index"),
            MenuItem("Broken entry", "no_such.endpoint"),
        ]


@pytest.fixture
def with_menu_plugin(app: Flask, alpha, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    host = plugins.PluginHost()
    host.register(MenuPlugin(), PLUGIN)
    monkeypatch.setitem(app.extensions, plugins.EXTENSION, host)
    # Alpha enabled the plugin; the registry read is the only thing that says so.
    enabled = dataclasses.replace(alpha, enabled_plugins=frozenset({PLUGIN}))
    real_by_slug = registry.by_slug
    monkeypatch.setattr(
        registry,
        "by_slug",
        lambda engine, slug: enabled if slug == "alpha" else real_by_slug(engine, slug),
    )
    # Host resolution remembers tenants for a few seconds (registry.RecentTenants):
    # forget them, so alpha is read through the patch, and again so later tests are not.
    registry.changed()
    yield
    registry.changed()


def _dashboard(app: Flask, slug: str) -> str:
    client = host_client(app, slug)
    login = client.post("/login", data={"email": f"admin@{slug}.example.com", "password": PASSWORD})
    assert login.status_code == 302
    return client.get("/").get_data(as_text=True)


def test_menu_entries_of_an_enabled_plugin_show(app: Flask, with_menu_plugin: None):
    page = _dashboard(app, "alpha")
    assert "Travel quotes" in page
    assert "Broken entry" not in page  # points nowhere: hidden, not a 500


def test_menu_entries_of_a_plugin_not_enabled_do_not_show(app: Flask, with_menu_plugin: None):
    assert "Travel quotes" not in _dashboard(app, "beta")
