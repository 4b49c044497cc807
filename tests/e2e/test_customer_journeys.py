"""Customers in a browser: an agent searches as they type, adds a customer, is warned
about a near-twin and opens the (masked) customer page; a manager imports a CSV file,
watches the job finish and reads which rows were refused."""

from __future__ import annotations

import random
import string
import subprocess

import pytest
from flask import Flask
from playwright.sync_api import Page, expect

from core.tenancy import Tenant
from tests.e2e.conftest import log_in
from tests.products.fixtures import make_staff
from tests.security.conftest import sign_in


def _word() -> str:
    """A surname no other test uses, so searches find only this run's customers."""
    return random.choice(string.ascii_uppercase) + "".join(
        random.choices(string.ascii_lowercase, k=9)
    )


@pytest.fixture
def tenant_url(live_server: str) -> str:
    port = live_server.rsplit(":", 1)[1]
    return f"http://alpha.localhost:{port}"


def test_agent_searches_adds_a_customer_and_is_warned_about_a_twin(
    app: Flask, alpha: Tenant, tenant_url: str, page: Page
) -> None:
    email = make_staff(app, alpha, "agent", agent=True).email
    # Two customers already in the agent's book, so the search has something to narrow.
    seeded = [_word(), _word()]
    client = sign_in(app, "alpha", email)
    for surname in seeded:
        response = client.post(
            "/customers/new",
            data={"kind": "person", "first_name": "Seed", "last_name": surname, "force": "1"},
        )
        assert response.status_code == 303, response.text

    log_in(page, tenant_url, email)
    page.goto(tenant_url + "/customers")
    rows = page.locator("#customer-results tbody tr")
    expect(rows).to_have_count(2)
    # A marker on the window survives only if typing swaps the results, not the page.
    page.evaluate("window.__stayed = true")

    search = page.get_by_role("searchbox", name="Search customers")
    search.press_sequentially(seeded[0], delay=40)
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(f"Seed {seeded[0]}")
    expect(page).to_have_url(f"{tenant_url}/customers?q={seeded[0]}")
    search.fill("")
    search.press_sequentially(_word(), delay=40)
    expect(page.locator("#customer-results")).to_contain_text("No customer matches")
    assert page.evaluate("window.__stayed") is True

    first, last = "Ada", _word()
    customer_email = f"ada.{last.lower()}@example.com"
    page.get_by_role("link", name="New customer").click()
    page.wait_for_url(tenant_url + "/customers/new")
    page.fill("#first_name", first)
    page.fill("#last_name", last)
    page.fill("#date_of_birth", "1980-05-17")
    page.fill("#email", customer_email)
    page.fill("#phone", "+44 20 7946 0123")
    page.get_by_role("button", name="Create customer").click()
    page.wait_for_url(f"{tenant_url}/customers/*")
    expect(page.get_by_role("heading", name=f"{first} {last}")).to_be_visible()
    customer_url = page.url

    # The same name and date of birth again: nothing saved, a warning naming the first.
    page.goto(tenant_url + "/customers/new")
    page.fill("#first_name", first)
    page.fill("#last_name", last)
    page.fill("#date_of_birth", "1980-05-17")
    page.get_by_role("button", name="Create customer").click()
    warning = page.locator("#duplicates")
    expect(warning).to_be_visible()
    expect(warning).to_contain_text("same name and date of birth")
    expect(warning.get_by_role("link", name=f"{first} {last}")).to_be_visible()
    expect(page.get_by_role("button", name="Save anyway")).to_be_visible()

    # An agent reads the customer's details masked, and the page's activity.
    warning.get_by_role("link", name=f"{first} {last}").click()
    page.wait_for_url(customer_url)
    expect(page.locator("#email")).to_contain_text("***@example.com")
    expect(page.locator("#email")).not_to_contain_text(customer_email)
    expect(page.locator("#phone")).to_contain_text("***123")
    expect(page.locator("#date-of-birth")).to_have_text("1980")
    expect(page.locator("#timeline")).to_contain_text("customers.create")
    expect(page.locator("#timeline")).to_contain_text(email)


def test_manager_imports_a_csv_and_reads_the_refused_rows(
    app: Flask, alpha: Tenant, tenant_url: str, worker: subprocess.Popen, page: Page
) -> None:
    email = make_staff(app, alpha, "manager").email
    surname = _word()
    csv = (
        "Given name,Surname,DOB,E-mail,Comment\n"
        f"Ann,{surname},1970-01-02,ann.{surname.lower()}@example.com,first\n"
        f"Bob,{surname},1971-02-03,bob.{surname.lower()}@example.com,second\n"
        f"Cid,{surname},1972-03-04,not-an-email,bad email\n"
        f"Dee,{surname},not-a-date,dee.{surname.lower()}@example.com,bad date\n"
    ).encode()

    log_in(page, tenant_url, email)
    page.goto(tenant_url + "/customers/import")
    page.set_input_files(
        "input[name=file]", {"name": "book.csv", "mimeType": "text/csv", "buffer": csv}
    )
    page.get_by_role("button", name="Upload").click()

    # Mapping: guessed from the headers where it can; the rest chosen by hand.
    expect(page.get_by_role("heading", name="Map columns")).to_be_visible()
    expect(page.get_by_label("Given name")).to_have_value("first_name")
    expect(page.get_by_label("Surname")).to_have_value("last_name")
    expect(page.get_by_label("Comment")).to_have_value("")
    page.get_by_label("DOB").select_option("date_of_birth")
    page.get_by_label("E-mail").select_option("email")
    page.get_by_label("Comment").select_option("notes")
    page.get_by_role("button", name="Import").click()

    page.wait_for_url(f"{tenant_url}/customers/import/jobs/*")
    panel = page.locator("#import-progress")
    expect(panel.locator("progress")).to_be_visible()
    expect(panel).to_have_attribute("data-status", "finished", timeout=30_000)
    expect(panel.locator("progress")).to_have_attribute("value", "100")
    expect(panel).to_contain_text("2 created, 0 already on file, 2 refused (of 4 rows).")
    refused = panel.locator("tbody tr")
    expect(refused).to_have_count(2)
    expect(refused.nth(0)).to_contain_text("4")
    expect(refused.nth(0)).to_contain_text("email")
    expect(refused.nth(1)).to_contain_text("5")
    expect(refused.nth(1)).to_contain_text("date_of_birth")

    download = panel.get_by_role("link", name="Download the refused rows")
    expect(download).to_have_attribute("href", page.url.split(tenant_url, 1)[1] + "/errors.csv")
    # Fetched by the page itself: Chromium, not Node, resolves *.localhost to loopback.
    body = page.evaluate("href => fetch(href).then(r => r.text())", download.get_attribute("href"))
    assert "not-an-email" in body and "not-a-date" in body
    assert f"ann.{surname.lower()}@example.com" not in body

    # The two good rows are customers now, in the whole book the manager sees.
    page.goto(f"{tenant_url}/customers?q={surname}")
    expect(page.locator("#customer-results tbody tr")).to_have_count(2)
