"""Host resolution remembers the tenants it found (RecentTenants) until a registry
write bumps the generation in Redis: a published change from any process is seen at
once, an unpublished one after the safety-net time, nothing is remembered without
Redis, and a tenant that did not exist yet is found at its first request."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from flask import Flask
from redis import Redis
from sqlalchemy import text

from core import generations
from tenants import provisioning, registry
from tenants.admin import admin_engine
from tests.conftest import host_client, make_tenant


def _set_status_elsewhere(app: Flask, slug: str, status: str, *, publish: bool) -> None:
    """What `powerbuyer tenants suspend` in another process does: a registry write and,
    when `publish`, the generation bump it sends through Redis."""
    with admin_engine(app).begin() as conn:
        conn.execute(
            text("UPDATE public.tenants SET status = :s WHERE slug = :slug"),
            {"s": status, "slug": slug},
        )
    if publish:
        Redis.from_url(app.config["REDIS_URL"]).incr(registry.GENERATION_KEY)


def test_a_change_published_by_another_process_is_seen_at_once(
    app: Flask, new_slug: Callable[[str], str]
) -> None:
    slug = new_slug("recent")
    make_tenant(app, slug)
    recent = registry.RecentTenants(lambda: admin_engine(app), seconds=3600)
    with app.app_context():
        remembered = recent.by_slug(slug)
        assert remembered is not None and remembered.status == "active"
        assert recent.by_slug(slug) is remembered  # remembered: no second query
        _set_status_elsewhere(app, slug, "suspended", publish=True)
        found = recent.by_slug(slug)
        assert found is not None and found.status == "suspended"


def test_an_unpublished_write_is_seen_once_the_safety_net_expires(
    app: Flask, new_slug: Callable[[str], str]
) -> None:
    slug = new_slug("recent")
    make_tenant(app, slug)
    recent = registry.RecentTenants(lambda: admin_engine(app), seconds=1.0)
    with app.app_context():
        started = time.monotonic()
        remembered = recent.by_slug(slug)
        _set_status_elsewhere(app, slug, "suspended", publish=False)
        assert recent.by_slug(slug) is remembered
        time.sleep(max(0.0, 1.05 - (time.monotonic() - started)))
        assert recent.by_slug(slug).status == "suspended"  # type: ignore[union-attr]


def test_without_redis_nothing_is_remembered(
    app: Flask, new_slug: Callable[[str], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    slug = new_slug("recent")
    make_tenant(app, slug)
    monkeypatch.setattr(generations, "current", lambda name: None)
    recent = registry.RecentTenants(lambda: admin_engine(app), seconds=3600)
    with app.app_context():
        assert recent.by_slug(slug).status == "active"  # type: ignore[union-attr]
        _set_status_elsewhere(app, slug, "suspended", publish=False)
        assert recent.by_slug(slug).status == "suspended"  # type: ignore[union-attr]


def test_the_resolver_sees_suspension_and_deletion_through_provisioning_at_once(
    app: Flask, new_slug: Callable[[str], str]
) -> None:
    slug = new_slug("recent")
    make_tenant(app, slug)
    client = host_client(app, slug)
    assert client.get("/login").status_code == 200  # the app now remembers the tenant
    with app.app_context():
        provisioning.set_status(admin_engine(app), slug, "suspended")
    assert client.get("/login").status_code == 403
    with app.app_context():
        provisioning.set_status(admin_engine(app), slug, "active")
    assert client.get("/login").status_code == 200
    with app.app_context():
        provisioning.delete_tenant(admin_engine(app), slug)
    assert client.get("/login").status_code == 404


def test_a_tenant_not_found_is_not_remembered(app: Flask, new_slug: Callable[[str], str]) -> None:
    slug = new_slug("recent")
    client = host_client(app, slug)
    assert client.get("/login").status_code == 404
    make_tenant(app, slug)
    assert client.get("/login").status_code == 200
