"""The products screens: the lines on offer, enable/disable, rate table uploads with
their errors listed, versions and settings; admins upload, managers run the catalogue,
agents only quote."""

from __future__ import annotations

import re
from datetime import date
from io import BytesIO

from flask import Flask
from sqlalchemy import func, select

from core.db import db
from core.products import queries
from core.products.models import RateTable
from core.tenancy import Tenant, tenant_context
from tests.products.fixtures import LIFE, MOTOR, Staff
from tests.products.motor_tables import motor_csv


def _tables(app: Flask, tenant: Tenant) -> int:
    with app.app_context(), tenant_context(tenant):
        return db.session.scalar(select(func.count()).select_from(RateTable))


def _upload(browser, content: bytes, name: str, line: str = MOTOR):  # type: ignore[no-untyped-def]
    return browser.post(
        "/products/rate-tables",
        data={"line_code": line, "file": (BytesIO(content), name)},
        content_type="multipart/form-data",
    )


def test_the_list_shows_the_lines_of_enabled_plugins(
    q_admin: Staff, products_on: dict[str, int]
) -> None:
    page = q_admin.browser().get("/products")
    assert page.status_code == 200
    rows = dict(re.findall(r'<tr data-line="([^"]+)">(.*?)</tr>', page.text, re.S))
    assert set(rows) == {MOTOR, LIFE}
    assert "On sale" in rows[MOTOR] and "premium_motor" in rows[MOTOR]
    assert 'id="upload-form"' in page.text
    assert 'href="/products"' in page.text  # the menu entry


def test_an_upload_lists_its_errors_or_is_stored(
    app: Flask, quoting: Tenant, q_admin: Staff, products_on: dict[str, int]
) -> None:
    browser = q_admin.browser()
    before = _tables(app, quoting)
    bad = _upload(browser, motor_csv(bad_cell="-1"), "bad.csv")
    assert bad.status_code == 422
    assert re.search(r'<ul class="form-errors"[^>]*>.*1001_to_1500cc', bad.text, re.S)
    assert _tables(app, quoting) == before
    good = _upload(browser, motor_csv("3.2999"), "screen.csv")
    assert good.status_code == 303
    listed = browser.get("/products").text
    assert "screen.csv" in listed
    again = _upload(browser, motor_csv("3.2999"), "again.csv")
    assert again.status_code == 422 and "already loaded" in again.text
    assert _tables(app, quoting) == before + 1


def test_versions_and_settings_through_the_product_page(
    app: Flask, quoting: Tenant, q_manager: Staff, products_on: dict[str, int]
) -> None:
    browser = q_manager.browser()
    product_id = products_on[LIFE]
    page = browser.get(f"/products/{product_id}")
    assert page.status_code == 200 and 'id="version-form"' in page.text
    bad = browser.post(
        f"/products/{product_id}/versions",
        data={"effective_from": "someday", "rate_table_id": "999999", "notes": ""},
    )
    assert bad.status_code == 422
    assert "effective from:" in bad.text and "rate table id:" in bad.text
    added = browser.post(
        f"/products/{product_id}/versions",
        data={"effective_from": "2045-01-01", "rate_table_id": "", "notes": "screen test"},
    )
    assert added.status_code == 303
    bad_settings = browser.post(
        f"/products/{product_id}/settings",
        data={"grace_annual": "x", "grace_half_yearly": "30", "grace_quarterly": "30"},
    )
    assert bad_settings.status_code == 422 and "grace days:" in bad_settings.text
    saved = browser.post(
        f"/products/{product_id}/settings",
        data={
            "name": "Term life",
            "grace_annual": "31",
            "grace_half_yearly": "30",
            "grace_quarterly": "30",
            "grace_monthly": "15",
            "revival_years": "5",
        },
    )
    assert saved.status_code == 303
    with app.app_context(), tenant_context(quoting):
        product = queries.product(product_id)
        assert product.grace_days["annual"] == 31
        assert [v.effective_from for v in queries.versions(product_id)][-1] == date(2045, 1, 1)


def test_who_may_do_what(q_manager: Staff, q_agent: Staff, products_on: dict[str, int]) -> None:
    manager = q_manager.browser()
    assert 'id="upload-form"' not in manager.get("/products").text
    assert _upload(manager, motor_csv("3.1"), "m.csv").status_code == 403
    agent = q_agent.browser()
    assert agent.get("/products").status_code == 403
    assert agent.post("/products/enable", data={"line_code": MOTOR}).status_code == 403
    assert agent.post(f"/products/{products_on[MOTOR]}/disable").status_code == 403
    assert 'href="/products"' not in agent.get("/customers").text


def test_another_tenant_without_the_plugins_has_no_lines(beta_quoter: Staff) -> None:
    browser = beta_quoter.browser()
    page = browser.get("/products")
    assert "No enabled plugin declares a product line." in page.text
    refused = browser.post("/products/enable", data={"line_code": MOTOR})
    assert refused.status_code == 422
    assert browser.get("/products/1").status_code == 404
