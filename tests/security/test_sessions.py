"""Sessions: cookie flags, a fresh registered id at each login, idle and absolute
timeouts from tenant settings, "log out everywhere"."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from redis import Redis
from sqlalchemy import select

from core import settings
from core.config import load_config
from core.db import db
from core.security import sessions
from core.security.models import User
from core.tenancy import Tenant, tenant_context
from tests.conftest import PASSWORD, host_client, make_tenant
from tests.security.conftest import audit_entries, create_user, last_audit_id

SERVER = "localhost:5000"


def new_user(app: Flask, tenant: Tenant) -> str:
    email = f"s-{uuid.uuid4().hex[:8]}@{tenant.slug}.example.com"
    create_user(app, tenant, email, ["agent"])
    return email


def signed_in(app: Flask, slug: str, email: str) -> FlaskClient:
    client = host_client(app, slug)
    assert client.post("/login", data={"email": email, "password": PASSWORD}).status_code == 302
    return client


def cookie(client: FlaskClient, slug: str) -> str | None:
    found = client.get_cookie("session", domain=f"{slug}.localhost")
    return found.value if found else None


def session_of(app: Flask, client: FlaskClient, slug: str) -> dict[str, Any]:
    """The decoded (signed, not encrypted) cookie session of `client` on `slug`'s host."""
    value = cookie(client, slug)
    assert value is not None
    with app.test_request_context(base_url=f"http://{slug}.{SERVER}"):
        serializer = app.session_interface.get_signing_serializer(app)  # type: ignore[attr-defined]
        return serializer.loads(value)


def redis(app: Flask) -> Redis:
    return app.extensions["redis"]


def record_key(tenant: Tenant, sid: str) -> str:
    return f"pb:t:{tenant.slug}:session:{sid}"


def is_signed_in(client: FlaskClient) -> bool:
    response = client.get("/account")
    assert response.status_code in (200, 302)
    return response.status_code == 200


def uniquifier(app: Flask, tenant: Tenant, email: str) -> str:
    with app.app_context(), tenant_context(tenant):
        return db.session.scalar(select(User.fs_uniquifier).where(User.email == email))


def test_cookie_flags(app: Flask, alpha: Tenant, monkeypatch) -> None:
    email = new_user(app, alpha)
    client = host_client(app, "alpha")
    response = client.post("/login", data={"email": email, "password": PASSWORD})
    header = response.headers["Set-Cookie"]
    assert "HttpOnly" in header
    assert "SameSite=Lax" in header
    assert "Domain=" not in header  # host-only: never sent to another tenant's host
    assert "Secure" not in header  # plain http in tests...
    monkeypatch.setenv("POWERBUYER_ENV", "production")
    assert load_config()["SESSION_COOKIE_SECURE"] is True  # ...https-only in production


def test_each_login_draws_a_new_registered_session_id(app: Flask, alpha: Tenant) -> None:
    email = new_user(app, alpha)
    client = host_client(app, "alpha")
    client.get("/login")
    before = session_of(app, client, "alpha")
    assert sessions.SID not in before

    assert client.post("/login", data={"email": email, "password": PASSWORD}).status_code == 302
    first = session_of(app, client, "alpha")[sessions.SID]
    stored = json.loads(redis(app).get(record_key(alpha, first)))
    assert stored["user"] == uniquifier(app, alpha, email)

    assert client.post("/logout").status_code == 302
    assert redis(app).get(record_key(alpha, first)) is None
    assert client.post("/login", data={"email": email, "password": PASSWORD}).status_code == 302
    second = session_of(app, client, "alpha")[sessions.SID]
    assert second != first
    assert redis(app).get(record_key(alpha, second)) is not None


def test_a_copied_cookie_is_dead_after_logout(app: Flask, alpha: Tenant) -> None:
    email = new_user(app, alpha)
    client = signed_in(app, "alpha", email)
    copied = cookie(client, "alpha")
    thief = host_client(app, "alpha")
    thief.set_cookie("session", copied, domain="alpha.localhost")
    assert is_signed_in(thief)  # the copy works while the session lives...

    client.post("/logout")
    thief.set_cookie("session", copied, domain="alpha.localhost")
    assert not is_signed_in(thief)  # ...and not after: the id is no longer registered


def test_a_session_without_a_registered_id_is_signed_out(app: Flask, alpha: Tenant) -> None:
    email = new_user(app, alpha)
    client = signed_in(app, "alpha", email)
    sid = session_of(app, client, "alpha")[sessions.SID]
    redis(app).delete(record_key(alpha, sid))
    response = client.get("/account")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")
    assert sessions.SID not in session_of(app, client, "alpha")


def test_idle_timeout_from_the_tenant_setting_renewed_by_each_request(app: Flask) -> None:
    tenant = make_tenant(app, f"idle-{uuid.uuid4().hex[:6]}")
    with app.app_context(), tenant_context(tenant):
        settings.set("session_idle_minutes", 7)
        db.session.commit()
    email = new_user(app, tenant)
    client = signed_in(app, tenant.slug, email)
    key = record_key(tenant, session_of(app, client, tenant.slug)[sessions.SID])
    assert 7 * 60 - 5 <= redis(app).ttl(key) <= 7 * 60

    redis(app).expire(key, 30)
    assert is_signed_in(client)
    assert redis(app).ttl(key) > 7 * 60 - 5  # renewed

    redis(app).pexpire(key, 1)  # idle past the timeout
    time.sleep(0.05)
    assert not is_signed_in(client)


def test_absolute_timeout_from_the_tenant_setting(app: Flask) -> None:
    tenant = make_tenant(app, f"abs-{uuid.uuid4().hex[:6]}")
    with app.app_context(), tenant_context(tenant):
        settings.set("session_absolute_hours", 2)
        db.session.commit()
    email = new_user(app, tenant)
    client = signed_in(app, tenant.slug, email)
    key = record_key(tenant, session_of(app, client, tenant.slug)[sessions.SID])
    record = json.loads(redis(app).get(key))
    assert abs(record["expires"] - (time.time() + 2 * 3600)) < 10

    # Active all along, but started more than two hours ago.
    record["expires"] = time.time() - 1
    redis(app).set(key, json.dumps(record), keepttl=True)
    assert not is_signed_in(client)
    assert redis(app).get(key) is None


def test_logout_everywhere(app: Flask, alpha: Tenant) -> None:
    email = new_user(app, alpha)
    here, there = signed_in(app, "alpha", email), signed_in(app, "alpha", email)
    before = uniquifier(app, alpha, email)
    since = last_audit_id(app, alpha)
    page = here.get("/account")
    assert "logged in on 2 sessions" in page.text

    response = here.post("/account/logout-everywhere")
    assert response.status_code == 303
    assert response.headers["Location"] == "/login"
    assert not is_signed_in(here)
    assert not is_signed_in(there)
    # Tokens and remember cookies are bound to the old fs_uniquifier: all invalid now.
    assert uniquifier(app, alpha, email) != before
    assert redis(app).smembers(f"pb:t:alpha:user-sessions:{before}") == set()
    (entry,) = audit_entries(app, alpha, "auth.logout_everywhere", since)
    assert entry.details == {"sessions": 2}

    assert is_signed_in(signed_in(app, "alpha", email))


def test_there_is_no_remember_me(app: Flask, alpha: Tenant) -> None:
    email = new_user(app, alpha)
    client = host_client(app, "alpha")
    assert 'name="remember"' not in client.get("/login").text
    response = client.post("/login", data={"email": email, "password": PASSWORD, "remember": "y"})
    assert response.status_code == 302
    assert client.get_cookie("remember_token", domain="alpha.localhost") is None
