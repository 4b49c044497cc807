"""Quote to policy in a browser: an agent finds a customer, quotes motor and watches the
premium follow the fields as they are typed, compares deductibles, saves, binds and
issues the policy and reads its number; then quotes term life for the same customer.

The brokerage is a tenant of its own that sells both in-tree lines, so the session's
tenants keep the plugins they are tested with.
"""

from __future__ import annotations

import random
import re
import string
import uuid
from collections.abc import Iterator
from datetime import date

import pytest
from flask import Flask
from playwright.sync_api import Page, expect
from sqlalchemy import select

from core.db import db
from core.products import operations as products
from core.security.models import User
from core.tenancy import Tenant, tenant_context
from tenants import registry
from tenants.admin import admin_engine
from tenants.plugin_cli import enable_plugin
from tenants.provisioning import delete_tenant
from tests.conftest import make_tenant
from tests.e2e.conftest import log_in
from tests.products.fixtures import make_staff
from tests.security.conftest import sign_in

LINES = {"premium_motor": "motor_private_car", "premium_life": "term_life"}


@pytest.fixture(scope="module")
def brokerage(app: Flask) -> Iterator[Tenant]:
    """A tenant selling motor and term life, with an admin who enabled both products."""
    tenant = make_tenant(app, f"journey{uuid.uuid4().hex[:6]}")
    for plugin in LINES:
        enable_plugin(admin_engine(app), tenant, plugin)
    tenant = registry.by_slug(admin_engine(app), tenant.slug) or tenant
    with app.app_context(), tenant_context(tenant):
        admin = db.session.scalars(select(User).where(User.email.startswith("admin@"))).one()
        for line in LINES.values():
            products.enable_product(line, user=admin)
    try:
        yield tenant
    finally:
        with app.app_context():
            delete_tenant(admin_engine(app), tenant.slug)


def test_agent_quotes_motor_live_binds_issues_then_quotes_life(
    app: Flask, brokerage: Tenant, live_server: str, page: Page
) -> None:
    base = f"http://{brokerage.slug}.localhost:{live_server.rsplit(':', 1)[1]}"
    email = make_staff(app, brokerage, "agent", agent=True).email
    surname = random.choice(string.ascii_uppercase) + "".join(
        random.choices(string.ascii_lowercase, k=9)
    )
    client = sign_in(app, brokerage.slug, email)
    response = client.post(
        "/customers/new",
        data={
            "kind": "person",
            "first_name": "Meera",
            "last_name": surname,
            "date_of_birth": "1986-02-11",
        },
    )
    assert response.status_code == 303, response.text

    log_in(page, base, email)
    page.goto(base + "/customers")
    page.get_by_role("searchbox", name="Search customers").press_sequentially(surname, delay=30)
    rows = page.locator("#customer-results tbody tr")
    expect(rows).to_have_count(1)
    rows.first.get_by_role("link").first.click()
    expect(page.get_by_role("heading", name=f"Meera {surname}")).to_be_visible()
    customer_url = page.url

    # Motor, typed field by field: no premium until the risk is complete, then the
    # PRODUCT.md reference, then a change of deductible moves it live.
    page.locator("#customer-quotes a[data-product=motor_private_car]").click()
    expect(page.get_by_role("heading", name=re.compile("Quote Motor private car"))).to_be_visible()
    page.evaluate("window.__stayed = true")
    page.fill("#start_date", date.today().isoformat())
    page.fill("#risk-vehicle_value", "800000")
    page.fill("#risk-vehicle_age_months", "36")
    page.fill("#risk-engine_cc", "1197")
    page.select_option("#risk-zone", "A")
    page.fill("#risk-claim_free_years", "3")
    expect(page.locator("#no-premium")).to_be_visible()
    page.select_option("#risk-voluntary_deductible", "5000")
    expect(page.locator("#premium")).to_have_text("14,391.12")
    # OD 18,384.80; no discount; bonus 35% = 6,434.68; + TP 3,416 = 15,366.12
    page.select_option("#risk-voluntary_deductible", "0")
    expect(page.locator("#premium")).to_have_text("15,366.12")
    page.fill("#risk-vehicle_value", "-5")
    expect(page.locator("#risk-vehicle_value-errors")).not_to_be_empty()
    page.fill("#risk-vehicle_value", "800000")
    page.select_option("#risk-voluntary_deductible", "5000")
    expect(page.locator("#premium")).to_have_text("14,391.12")
    assert page.evaluate("window.__stayed") is True

    page.get_by_role("button", name=re.compile("Compare")).click()
    options = page.locator("#quote-compare")
    expect(options.locator("td[data-option='5000']")).to_contain_text("14,391.12")
    expect(options.locator("td[data-option='0']")).to_contain_text("15,366.12")

    page.get_by_role("button", name="Save quote").click()
    page.wait_for_url(re.compile(r".*/quotes/\d+$"))
    expect(page.locator("#premium")).to_have_text("14,391.12")
    page.locator("#bind").click()  # motor asks no declarations: bound at once, annually
    expect(page.locator("#policy-number")).to_have_text("Bound, not issued")
    page.locator("#issue").click()
    expect(page.locator("#policy-number")).to_have_text(
        re.compile(rf"^POL-{date.today().year}-\d{{6}}$")
    )
    expect(page.locator("#policy-state")).to_have_text("in force")

    # Term life for the same customer: PRODUCT.md's example, net 70.88 and gross 133.32.
    page.goto(customer_url)
    page.locator("#customer-quotes a[data-product=term_life]").click()
    page.fill("#start_date", date.today().isoformat())
    page.fill("#risk-issue_age", "40")
    page.fill("#risk-term_years", "10")
    page.fill("#risk-sum_assured", "100000")
    page.select_option("#risk-sex", "male")
    page.select_option("#risk-smoker", "false")
    expect(page.locator("#premium")).to_have_text("133.32")
    page.get_by_role("button", name="Save quote").click()
    page.wait_for_url(re.compile(r".*/quotes/\d+$"))
    expect(page.locator("#premium")).to_have_text("133.32")
    page.goto(customer_url)
    expect(page.locator("#customer-policies")).to_contain_text(f"POL-{date.today().year}-")
