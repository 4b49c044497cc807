"""A brokerage signs up on the apex, watches its workspace being prepared, and its
admin logs in on the new tenant's own host."""

from __future__ import annotations

import subprocess

from passlib.totp import TOTP
from playwright.sync_api import Page, expect

PASSWORD = "a long enough passphrase"


def test_sign_up_a_brokerage_and_log_in_on_its_host(
    live_server: str, worker: subprocess.Popen, page: Page
):
    port = live_server.rsplit(":", 1)[1]
    page.goto(live_server + "/")
    page.get_by_role("button", name="Sign up your brokerage").click()

    page.fill("#name", "Harbour Insurance Brokers")
    page.fill("#slug", "harbour")
    page.fill("#admin_email", "owner@harbour.example.com")
    page.fill("#password", PASSWORD)
    page.fill("#password_confirm", PASSWORD)
    page.get_by_role("button", name="Create my workspace").click()

    # The progress page polls the provisioning job, then sends us to the new host.
    expect(page.locator("progress")).to_be_visible()
    page.wait_for_url(f"http://harbour.localhost:{port}/login**", timeout=30_000)
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    expect(page.get_by_text("to Harbour Insurance Brokers")).to_be_visible()

    page.fill("#email", "owner@harbour.example.com")
    page.fill("#password", "not the password at all")
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#email")).to_be_visible()  # refused, still on the form

    page.fill("#password", PASSWORD)
    page.get_by_role("button", name="Log in").click()

    # An admin sets up two-factor authentication before anything else: the key shown
    # beside the QR code goes into an authenticator app, whose code confirms it.
    page.wait_for_url(f"http://harbour.localhost:{port}/tf-setup")
    page.get_by_label("Set up using an authenticator app", exact=False).check()
    page.locator("form[name=two_factor_setup_form] [type=submit]").click()
    expect(page.locator("#qrcode")).to_be_visible()
    key = page.locator("#qrcode").locator("xpath=../following-sibling::div").inner_text()
    code = TOTP(key=key.strip().replace("-", ""), format="base32").generate().token
    page.fill("#code", code)
    page.locator("form[name=two_factor_verify_code_form] [type=submit]").click()
    page.wait_for_url(f"http://harbour.localhost:{port}/")
    expect(page.get_by_text("Signed in as owner@harbour.example.com")).to_be_visible()

    # The new admin's session belongs to harbour's host only.
    page.goto(f"http://alpha.localhost:{port}/")
    page.wait_for_url(f"http://alpha.localhost:{port}/login**")
