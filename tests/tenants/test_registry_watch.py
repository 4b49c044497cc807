"""The registry watch (core.generations.Watch): a process hears of registry
changes from Redis without asking on every request, and while its connection is down
each request reads the generation counter again, so no change is ever missed."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask import Flask
from redis import Redis
from sqlalchemy import text

from core import generations
from tenants import registry
from tenants.admin import admin_engine
from tests.conftest import make_tenant


def _suspend_elsewhere(app: Flask, slug: str) -> None:
    """`powerbuyer tenants suspend` in another process: the write, then the bump it
    publishes through a Redis connection of its own."""
    with admin_engine(app).begin() as conn:
        conn.execute(
            text("UPDATE public.tenants SET status = 'suspended' WHERE slug = :slug"),
            {"slug": slug},
        )
    Redis.from_url(app.config["REDIS_URL"]).incr(registry.GENERATION_KEY)


def test_no_request_reads_the_counter_while_the_watch_is_up(
    app: Flask, new_slug: Callable[[str], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    slug = new_slug("watch")
    make_tenant(app, slug)
    recent = registry.RecentTenants(lambda: admin_engine(app), seconds=3600)
    with app.app_context():
        redis = app.extensions["redis"]
        assert generations.Watch.of(redis).generation(registry.GENERATION_KEY) is not None
        remembered = recent.by_slug(slug)
        assert remembered is not None

        def no_get(*args: object, **kwargs: object) -> None:
            raise AssertionError("a request read the generation counter")

        monkeypatch.setattr(redis, "get", no_get)
        assert recent.by_slug(slug) is remembered
        _suspend_elsewhere(app, slug)
        found = recent.by_slug(slug)
        assert found is not None and found.status == "suspended"


def test_while_the_watch_is_down_a_change_is_still_seen_at_once(
    app: Flask, new_slug: Callable[[str], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    slug = new_slug("watch")
    make_tenant(app, slug)
    recent = registry.RecentTenants(lambda: admin_engine(app), seconds=3600)
    with app.app_context():
        watch = generations.Watch.of(app.extensions["redis"])
        monkeypatch.setattr(watch, "RETRY_SECONDS", 0.0)
        assert watch.generation(registry.GENERATION_KEY) is not None
        remembered = recent.by_slug(slug)
        assert remembered is not None and remembered.status == "active"
        # The server drops the watch's connection; the change lands while it is down.
        app.extensions["redis"].execute_command("CLIENT", "KILL", "ID", watch.client_id)
        _suspend_elsewhere(app, slug)
        found = recent.by_slug(slug)
        assert found is not None and found.status == "suspended"


def test_after_an_outage_the_watch_trusts_nothing_remembered_before(
    app: Flask, new_slug: Callable[[str], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    slug = new_slug("watch")
    make_tenant(app, slug)
    recent = registry.RecentTenants(lambda: admin_engine(app), seconds=3600)
    with app.app_context():
        watch = generations.Watch.of(app.extensions["redis"])
        monkeypatch.setattr(watch, "RETRY_SECONDS", 0.0)
        assert watch.generation(registry.GENERATION_KEY) is not None
        remembered = recent.by_slug(slug)
        assert recent.by_slug(slug) is remembered
        app.extensions["redis"].execute_command("CLIENT", "KILL", "ID", watch.client_id)
        assert watch.generation(registry.GENERATION_KEY) is None  # the outage, noticed
        assert watch.generation(registry.GENERATION_KEY) is not None  # a new connection
        # Messages may have been lost meanwhile: the tenant is read again, then kept.
        again = recent.by_slug(slug)
        assert again is not None and again is not remembered
        assert recent.by_slug(slug) is again
