"""A security key: registered on the account, then asked for as the second factor at
the next login. Chromium's virtual authenticator (DevTools WebAuthn domain) plays the
key; the relying party is the tenant's own host, alpha.localhost (a secure context,
as every *.localhost is)."""

from __future__ import annotations

import uuid

from flask import Flask
from playwright.sync_api import Page, expect
from sqlalchemy import select

from core.db import db
from core.security.models import User, WebAuthn
from core.tenancy import Tenant, tenant_context
from tests.e2e.conftest import log_in
from tests.security.conftest import create_user

VIRTUAL_KEY = {
    "protocol": "ctap2",
    "transport": "internal",
    "hasResidentKey": True,
    "hasUserVerification": True,
    "isUserVerified": True,
}


def test_register_a_security_key_then_sign_in_with_it(
    app: Flask, alpha: Tenant, live_server: str, page: Page
) -> None:
    port = live_server.rsplit(":", 1)[1]
    base = f"http://alpha.localhost:{port}"
    email = f"key-{uuid.uuid4().hex[:8]}@alpha.example.com"
    create_user(app, alpha, email, ["agent"])

    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    key = cdp.send("WebAuthn.addVirtualAuthenticator", {"options": VIRTUAL_KEY})["authenticatorId"]

    # Signed in with a password, the user registers the key from their account.
    log_in(page, base, email, landing=None)
    page.wait_for_url(base + "/")
    page.goto(base + "/account")
    page.get_by_role("link", name="Manage security keys").click()
    page.fill("#name", "Desk key")
    page.locator("#wan-register-form [type=submit]").click()
    # The page hands the options to navigator.credentials.create, which the virtual
    # key answers, and posts the new credential back by itself.
    expect(page.get_by_text('Nickname: "Desk key"')).to_be_visible()
    (credential,) = cdp.send("WebAuthn.getCredentials", {"authenticatorId": key})["credentials"]
    with app.app_context(), tenant_context(alpha):
        user_id = db.session.scalar(select(User.id).where(User.email == email))
        stored = db.session.scalars(select(WebAuthn).where(WebAuthn.user_id == user_id)).all()
        assert [(k.name, k.usage) for k in stored] == [("Desk key", "secondary")]

    page.evaluate("document.querySelector('form.logout').submit()")
    page.wait_for_url(base + "/login")

    # The password alone no longer signs in: the key is asked for, and signs.
    log_in(page, base, email, landing=None)
    page.wait_for_url(f"{base}/wan-signin**")
    expect(page.get_by_role("heading", name="Use a Passkey as a Second Factor")).to_be_visible()
    page.locator("#wan-signin-form [type=submit]").click()
    page.wait_for_url(base + "/")
    expect(page.get_by_text(f"Signed in as {email}")).to_be_visible()
    (after,) = cdp.send("WebAuthn.getCredentials", {"authenticatorId": key})["credentials"]
    assert after["signCount"] > credential["signCount"]
