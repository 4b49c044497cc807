"""The quote screen: reached from the customer's page, fields from the product's risk
schema, the live premium fragment with per-field errors, options side by side, saving
the quote, and reach (404) and permissions (403) as for the API."""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from flask import Flask
from sqlalchemy import func, select

from core.db import db
from core.policies.models import Quote
from core.tenancy import Tenant, tenant_context
from tests.conftest import host_client
from tests.products.fixtures import *  # noqa: F403  (the fixtures)
from tests.products.fixtures import LIFE, MOTOR, REFERENCE_LIFE, REFERENCE_MOTOR, Staff

HTMX = {"HX-Request": "true"}


def _form(product: str = MOTOR, **risk: Any) -> dict[str, str]:
    values = {**(REFERENCE_MOTOR if product == MOTOR else REFERENCE_LIFE), **risk}
    form = {"product": product, "start_date": date.today().isoformat()}
    for name, value in values.items():
        form[f"risk.{name}"] = str(value).lower() if isinstance(value, bool) else str(value)
    return form


def _quote_count(app: Flask, tenant: Tenant) -> int:
    with app.app_context(), tenant_context(tenant):
        return db.session.scalar(select(func.count()).select_from(Quote))


def _text(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def test_the_customer_page_links_to_a_quote_for_each_product(
    q_agent: Staff, agent_customer: dict[str, Any]
) -> None:
    browser = q_agent.browser()
    page = browser.get(f"/customers/{agent_customer['id']}").get_data(as_text=True)
    for code in (MOTOR, LIFE):
        assert f'href="/customers/{agent_customer["id"]}/quotes/new?product={code}"' in page


def test_the_form_asks_for_the_products_risk_fields_and_previews_live(
    q_agent: Staff, agent_customer: dict[str, Any]
) -> None:
    browser = q_agent.browser()
    base = f"/customers/{agent_customer['id']}/quotes"
    page = browser.get(f"{base}/new?product={MOTOR}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    for name in (*REFERENCE_MOTOR, "agreed_value"):
        assert f'name="risk.{name}"' in html
    assert 'hx-trigger="input changed delay:400ms"' in html
    assert f'hx-post="{base}/preview"' in html
    assert '<option value="B">B</option>' in html  # zone's declared choices

    preview = browser.post(f"{base}/preview", data=_form(), headers=HTMX)
    assert preview.status_code == 200
    fragment = preview.get_data(as_text=True)
    assert "<html" not in fragment
    text = _text(fragment)
    assert "Premium 14,391.12 INR" in text
    # The breakdown: each step's label, factor and amount.
    assert "No-claim bonus 35% \u22125,909.68" in text
    assert "Own damage 3.283% (zone A, 1001-1500cc, 36 months) +18,384.80" in text
    assert "Voluntary deductible discount" in text and "\u22121,500.00" in text


def test_the_preview_names_bad_fields_beside_them_and_lists_missing_ones(
    app: Flask, quoting: Tenant, q_agent: Staff, agent_customer: dict[str, Any]
) -> None:
    before = _quote_count(app, quoting)
    browser = q_agent.browser()
    form = _form(zone="C", vehicle_value="-1")
    form["risk.engine_cc"] = ""  # not typed yet
    answer = browser.post(
        f"/customers/{agent_customer['id']}/quotes/preview", data=form, headers=HTMX
    )
    assert answer.status_code == 422
    html = answer.get_data(as_text=True)
    zone = re.search(r'<small id="risk-zone-errors"[^>]*hx-swap-oob="true">([^<]*)<', html)
    assert zone and "must be one of A, B" in zone.group(1)
    value = re.search(r'<small id="risk-vehicle_value-errors"[^>]*>([^<]*)<', html)
    assert value and value.group(1).strip()
    # A field not filled in yet is listed, not flagged; a valid one is cleared.
    engine = re.search(r'<small id="risk-engine_cc-errors"[^>]*>([^<]*)<', html)
    assert engine and engine.group(1) == ""
    assert "Fill in Engine capacity (cc) to see the premium." in _text(html)
    cleared = re.search(r'<small id="risk-claim_free_years-errors"[^>]*>([^<]*)<', html)
    assert cleared and cleared.group(1) == ""
    assert _quote_count(app, quoting) == before


def test_options_are_compared_side_by_side(q_agent: Staff, agent_customer: dict[str, Any]) -> None:
    """Premiums for each voluntary deductible of the reference risk, worked by hand:
    OD 18,384.80, 35% bonus on OD less the discount, third party 3,416.00.
    0: bonus 6,434.68 -> 15,366.12; 2,500: discount 750.00 (capped), bonus 6,172.18 ->
    14,878.62; 5,000: 14,391.12; 7,500: discount 2,000.00, bonus 5,734.68 -> 14,066.12;
    15,000: discount 2,500.00, bonus 5,559.68 -> 13,741.12."""
    browser = q_agent.browser()
    base = f"/customers/{agent_customer['id']}/quotes"
    answer = browser.post(f"{base}/compare", data=_form(), headers=HTMX)
    assert answer.status_code == 200
    html = answer.get_data(as_text=True)
    cells = dict(re.findall(r'<td data-option="([^"]+)"><strong>([^<]+)</strong>', html))
    assert cells == {
        "0": "15,366.12",
        "2500": "14,878.62",
        "5000": "14,391.12",
        "7500": "14,066.12",
        "15000": "13,741.12",
    }
    # Life compares sums assured around the one entered; 100,000 is the reference.
    life = browser.post(f"{base}/compare", data=_form(LIFE), headers=HTMX)
    options = dict(re.findall(r'<td data-option="([^"]+)"><strong>([^<]+)</strong>', life.text))
    assert options["100000"] == "133.32"
    assert len(options) >= 3


def test_saving_a_quote_goes_to_its_page(
    app: Flask, quoting: Tenant, q_agent: Staff, agent_customer: dict[str, Any]
) -> None:
    browser = q_agent.browser()
    base = f"/customers/{agent_customer['id']}/quotes"
    before = _quote_count(app, quoting)
    refused = browser.post(base, data=_form(voluntary_deductible="3000"))
    assert refused.status_code == 422
    assert 'aria-invalid="true"' in refused.text and "must be one of" in refused.text
    assert _quote_count(app, quoting) == before

    saved = browser.post(base, data=_form(LIFE))
    assert saved.status_code == 303
    page = browser.get(saved.headers["Location"])
    assert page.status_code == 200
    assert "Premium 133.32 USD a year" in _text(page.text)
    # Binding comes with the policies screens; the button shows only when they exist.
    assert ('id="bind"' in page.text) == ("policies.bind" in app.view_functions)
    with app.app_context(), tenant_context(quoting):
        quote = db.session.scalars(select(Quote).order_by(Quote.id.desc()).limit(1)).one()
        assert (quote.line_code, str(quote.premium), quote.agent_id) == (
            LIFE,
            "133.32",
            q_agent.agent_id,
        )
        assert saved.headers["Location"].endswith(f"/quotes/{quote.id}")
        # The form's text values were stored as sent (trimmed), "false" included.
        assert quote.risk["smoker"] == "false"


def test_other_books_and_tenants_get_404_and_customers_403(
    app: Flask,
    q_agent: Staff,
    q_other_agent: Staff,
    q_customer_user: Staff,
    beta_quoter: Staff,
    agent_customer: dict[str, Any],
) -> None:
    quote = q_agent.call(
        "POST",
        "/quotes",
        json={
            "product": MOTOR,
            "customer_id": agent_customer["id"],
            "start_date": date.today().isoformat(),
            "risk": REFERENCE_MOTOR,
        },
    ).json
    base = f"/customers/{agent_customer['id']}/quotes"
    other = q_other_agent.browser()
    assert other.get(f"/quotes/{quote['id']}").status_code == 404
    assert other.get(f"{base}/new?product={MOTOR}").status_code == 404
    assert other.post(f"{base}/preview", data=_form(), headers=HTMX).status_code == 404
    assert other.post(base, data=_form()).status_code == 404
    beta = beta_quoter.browser()
    assert beta.get(f"/quotes/{quote['id']}").status_code == 404
    assert beta.get(f"{base}/new?product={MOTOR}").status_code == 404
    customer = q_customer_user.browser()
    assert customer.get(f"{base}/new?product={MOTOR}").status_code == 403
    assert customer.post(f"{base}/preview", data=_form(), headers=HTMX).status_code == 403
    assert customer.get(f"/quotes/{quote['id']}").status_code == 403
    # Nobody signed in: to the login page.
    anonymous = host_client(app, q_agent.slug).get(f"/quotes/{quote['id']}")
    assert anonymous.status_code == 302 and "/login" in anonymous.headers["Location"]


def test_an_unknown_product_is_404_on_the_screen(
    q_agent: Staff, agent_customer: dict[str, Any]
) -> None:
    browser = q_agent.browser()
    base = f"/customers/{agent_customer['id']}/quotes"
    assert browser.get(f"{base}/new?product=travel").status_code == 404
    choose = browser.get(f"{base}/new")
    assert choose.status_code == 200
    assert f"product={MOTOR}" in choose.text and f"product={LIFE}" in choose.text
