"""Two-factor authentication: admins are made to enrol at first login, then sign in
with authenticator (TOTP) codes, each usable once, or with a recovery code."""

from __future__ import annotations

import html
import re
import time
import uuid

import pytest
from flask import Flask
from flask.testing import FlaskClient
from passlib.totp import TOTP
from sqlalchemy import select

from core import settings
from core.db import db
from core.security import accounts
from core.security.models import User
from core.tenancy import Tenant, tenant_context
from tests.conftest import PASSWORD, host_client, make_tenant
from tests.security.conftest import create_user

STEP = 30


@pytest.fixture(scope="module")
def tenant(app: Flask) -> Tenant:
    """A tenant with the product's default: admins must use two-factor authentication."""
    return make_tenant(app, f"mfa-{uuid.uuid4().hex[:6]}", admin_mfa=True)


class Authenticator:
    """The phone app: the secret read off the setup page, codes for successive steps
    (each code is accepted once, so every login uses the next step's)."""

    def __init__(self, key: str) -> None:
        self.totp = TOTP(key=key.replace("-", ""), format="base32")
        self.step = 0

    def code(self) -> str:
        # Within the accepted window (TWO_FACTOR_AUTHENTICATOR_VALIDITY, 120 s).
        at = time.time() + self.step * STEP
        self.step += 1
        return self.totp.generate(time=at).token


def new_user(app: Flask, tenant: Tenant, roles: list[str]) -> str:
    email = f"m-{uuid.uuid4().hex[:8]}@{tenant.slug}.example.com"
    create_user(app, tenant, email, roles)
    return email


def password_step(client: FlaskClient, email: str):  # type: ignore[no-untyped-def]
    return client.post("/login", data={"email": email, "password": PASSWORD})


def is_signed_in(client: FlaskClient) -> bool:
    return client.get("/account").status_code == 200


def enrol(client: FlaskClient) -> Authenticator:
    """Choose the authenticator app on /tf-setup and confirm the first code."""
    shown = client.post("/tf-setup", data={"setup": "authenticator"})
    assert shown.status_code == 200, shown.text[:400]
    assert 'id="qrcode"' in shown.text
    key = re.search(r"<div>([A-Z2-7]{4}(?:-[A-Z2-7]{2,4})+)</div>", shown.text)
    assert key, "the setup page shows the key for manual entry"
    app = Authenticator(html.unescape(key.group(1)))
    # /tf-validate while signing in, /tf-setup/<state> when already signed in.
    form = re.search(
        r'<form action="([^"]+)" method="post" name="two_factor_verify_code_form"', shown.text
    )
    assert form
    path = html.unescape(form.group(1))
    done = client.post(path, data={"code": app.code()})
    assert done.status_code == 302, done.text[:400]
    return app


def tf_enabled(app: Flask, tenant: Tenant, email: str) -> bool:
    with app.app_context(), tenant_context(tenant):
        return bool(db.session.scalar(select(User.tf_primary_method).where(User.email == email)))


def test_an_admin_is_made_to_enrol_at_first_login(app: Flask, tenant: Tenant) -> None:
    client = host_client(app, tenant.slug)
    first = password_step(client, f"admin@{tenant.slug}.example.com")
    assert first.status_code == 302
    assert first.headers["Location"] == "/tf-setup"
    # The password alone does not sign in.
    assert not is_signed_in(client)
    setup = client.get("/tf-setup")
    assert setup.status_code == 200
    assert 'value="authenticator"' in setup.text
    assert 'value="disable"' not in setup.text  # required: it cannot be switched off

    enrol(client)
    assert is_signed_in(client)
    assert tf_enabled(app, tenant, f"admin@{tenant.slug}.example.com")


def test_the_rule_follows_the_tenant_setting(app: Flask, tenant: Tenant) -> None:
    agent = new_user(app, tenant, ["agent"])
    assert password_step(host_client(app, tenant.slug), agent).headers["Location"] == "/"
    with app.app_context(), tenant_context(tenant):
        settings.set("mfa_required_roles", ["admin", "agent"])
        db.session.commit()
    try:
        client = host_client(app, tenant.slug)
        assert password_step(client, agent).headers["Location"] == "/tf-setup"
        assert not is_signed_in(client)
    finally:
        with app.app_context(), tenant_context(tenant):
            settings.set("mfa_required_roles", ["admin"])
            db.session.commit()


def test_a_session_that_gains_a_required_role_is_sent_to_enrol(app: Flask, tenant: Tenant) -> None:
    email = new_user(app, tenant, ["agent"])
    client = host_client(app, tenant.slug)
    assert password_step(client, email).headers["Location"] == "/"
    assert is_signed_in(client)
    with app.app_context(), tenant_context(tenant):
        user = db.session.scalar(select(User).where(User.email == email))
        accounts.set_roles(user, ["admin"], by=None)
        db.session.commit()
    blocked = client.get("/account")
    assert blocked.status_code == 302
    assert blocked.headers["Location"] == "/tf-setup"
    assert client.get("/tf-setup").status_code == 200  # the way out stays open
    enrol(client)
    assert is_signed_in(client)


def test_totp_login_each_code_once(app: Flask, tenant: Tenant) -> None:
    email = new_user(app, tenant, ["admin"])
    client = host_client(app, tenant.slug)
    password_step(client, email)
    phone = enrol(client)
    client.post("/logout")

    client = host_client(app, tenant.slug)
    step = password_step(client, email)
    assert step.status_code == 302
    assert step.headers["Location"].startswith("/tf-validate")
    assert not is_signed_in(client)
    wrong = client.post("/tf-validate", data={"code": "000000"})
    assert wrong.status_code == 422
    assert not is_signed_in(client)
    code = phone.code()
    assert client.post("/tf-validate", data={"code": code}).status_code == 302
    assert is_signed_in(client)
    client.post("/logout")

    # The same code again (seen over a shoulder, say) is refused.
    replay = host_client(app, tenant.slug)
    password_step(replay, email)
    assert replay.post("/tf-validate", data={"code": code}).status_code == 422
    assert not is_signed_in(replay)
    assert replay.post("/tf-validate", data={"code": phone.code()}).status_code == 302
    assert is_signed_in(replay)


def test_recovery_codes_sign_in_once_each(app: Flask, tenant: Tenant) -> None:
    email = new_user(app, tenant, ["admin"])
    client = host_client(app, tenant.slug)
    password_step(client, email)
    enrol(client)
    page = client.post("/mf-recovery-codes", data={})
    assert page.status_code == 200
    codes = re.findall(r"\b[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}\b", page.text)
    assert len(codes) == 8
    with app.app_context(), tenant_context(tenant):
        stored = db.session.scalars(select(User).where(User.email == email)).one().mf_recovery_codes
    assert stored and not set(codes) & set(stored)  # kept encrypted, not as shown
    client.post("/logout")

    lost_phone = host_client(app, tenant.slug)
    password_step(lost_phone, email)
    assert lost_phone.post("/mf-recovery", data={"code": "dead-beef-0000"}).status_code == 422
    assert not is_signed_in(lost_phone)
    assert lost_phone.post("/mf-recovery", data={"code": codes[0]}).status_code == 302
    assert is_signed_in(lost_phone)
    lost_phone.post("/logout")

    again = host_client(app, tenant.slug)
    password_step(again, email)
    assert again.post("/mf-recovery", data={"code": codes[0]}).status_code == 422
    assert not is_signed_in(again)


def test_wrong_codes_count_towards_the_lockout(app: Flask, tenant: Tenant) -> None:
    email = new_user(app, tenant, ["admin"])
    client = host_client(app, tenant.slug)
    password_step(client, email)
    enrol(client)
    client.post("/logout")
    for attempt in range(5):
        guessing = host_client(app, tenant.slug)
        guessing.environ_base["REMOTE_ADDR"] = f"203.0.113.{attempt + 1}"
        password_step(guessing, email)
        assert guessing.post("/tf-validate", data={"code": "123456"}).status_code == 422
    with app.app_context(), tenant_context(tenant):
        locked = db.session.scalar(select(User.locked_at).where(User.email == email))
    assert locked is not None
    refused = host_client(app, tenant.slug)
    assert password_step(refused, email).status_code == 422  # the password step refuses
    assert not is_signed_in(refused)
