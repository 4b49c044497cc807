"""The policy screens: bind from a quote (with life declarations), issue, endorse and
cancel from the policy page, renewal offers, the book, and the customer's fragment."""

from __future__ import annotations

import re
import uuid
from datetime import date, timedelta
from decimal import Decimal

from flask import Flask

from core.tenancy import Tenant
from tests.core import jobs_support
from tests.policies.conftest import (
    LIFE,
    Staff,
    issued,
    new_customer,
    plain_year_start,
    quote,
)
from tests.policies.line_plugin import BOOK_LINE
from tests.policies.test_renewals import offer_job, offers
from tests.products.conftest import REFERENCE_LIFE

MINUS = "\u2212"


def _text(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def test_bind_issue_endorse_and_cancel_on_the_screens(
    app: Flask, cover: Tenant, agent: Staff, products: dict
) -> None:
    browser = agent.browser()
    customer = new_customer(agent)
    start = plain_year_start()
    offered = quote(agent, customer["id"], start=start)

    # The quote page posts Bind with no more than its CSRF token.
    answer = browser.post(f"/quotes/{offered['id']}/bind")
    assert answer.status_code == 303
    policy_path = answer.headers["Location"]
    policy_id = int(policy_path.rsplit("/", 1)[1])
    page = _text(browser.get(policy_path).text)
    assert "Bound, not issued" in page and "Issue" in page

    issued_answer = browser.post(f"{policy_path}/issue")
    assert issued_answer.status_code == 303
    page = browser.get(policy_path).text
    number = re.search(r'id="policy-number">([^<]+)<', page).group(1)
    assert number.startswith(f"POL-{start.year}-")
    assert "in force" in _text(page) and "1,500.00 EUR" in _text(page)

    bad = browser.post(
        f"{policy_path}/endorse",
        data={"effective_from": "", "risk.sum_insured": "-1", "reason": "x"},
    )
    assert bad.status_code == 422
    assert 'id="effective_from"' in bad.text and "This field is required." in bad.text
    assert "Must be a positive amount." in bad.text

    endorsed = browser.post(
        f"{policy_path}/endorse",
        data={
            "effective_from": (start + timedelta(days=100)).isoformat(),
            "risk.sum_insured": "120000",
            "risk.claim_free_years": "0",
            "reason": "Extension",
        },
    )
    assert endorsed.status_code == 303
    page = _text(browser.get(policy_path).text)
    # 300 x 265 / 365 = 217.81 (see test_changes).
    assert "2 endorsement" in page and "1,800.00 217.81 Extension" in page

    cancelled = browser.post(
        f"{policy_path}/cancel",
        data={"effective_on": (start + timedelta(days=300)).isoformat(), "reason": "Sold"},
    )
    assert cancelled.status_code == 303
    page = browser.get(policy_path).text
    # 1,800 x 65 / 365 = 320.547... -> 320.55 returned.
    assert "-320.55" in _text(page) and "cancelled" in _text(page)
    assert 'id="cancel"' not in page and 'id="endorse"' not in page
    assert browser.post(f"{policy_path}/issue").status_code == 409

    book = _text(browser.get("/policies").text)
    assert number in book
    fragment = browser.get(f"/customers/{customer['id']}/policies")
    assert fragment.status_code == 200 and f'id="customer-policy-{policy_id}"' in fragment.text


def test_binding_life_on_the_screen_asks_the_declarations(
    app: Flask, cover: Tenant, agent: Staff, products: dict
) -> None:
    browser = agent.browser()
    offered = quote(agent, new_customer(agent)["id"], line=LIFE, risk=REFERENCE_LIFE)
    path = f"/quotes/{offered['id']}/bind"

    asked = browser.post(path)
    assert asked.status_code == 200
    assert 'name="declarations.good_health"' in asked.text and "form-errors" not in asked.text

    refused = browser.post(path, data={"declared": "1", "declarations.good_health": "yes"})
    assert refused.status_code == 422
    assert "Must be confirmed to bind" in refused.text

    bound_answer = browser.post(
        path,
        data={
            "declared": "1",
            "payment_frequency": "monthly",
            "declarations.good_health": "yes",
            "declarations.smoker_status_true": "yes",
            "declarations.no_hazardous_occupation": "yes",
        },
    )
    assert bound_answer.status_code == 303
    page = _text(browser.get(bound_answer.headers["Location"]).text)
    assert "monthly" in page and "Bound, not issued" in page


def test_a_renewal_offer_is_explained_and_accepted_on_the_policy_page(
    app: Flask, cover: Tenant, agent: Staff, products: dict
) -> None:
    policy = issued(agent, new_customer(agent)["id"])
    end = date.fromisoformat(policy["end_date"])
    offer_job(app, cover, end - timedelta(days=15))
    (offer,) = offers(agent, policy["id"])
    browser = agent.browser()
    page = browser.get(f"/policies/{policy['id']}").text
    assert f"No-claim discount 0% \u2192 10%: {MINUS}150.00" in page
    accepted = browser.post(f"/renewal-offers/{offer['id']}/accept")
    assert accepted.status_code == 303
    renewed = _text(browser.get(accepted.headers["Location"]).text)
    assert "in force" in renewed and "1,350.00 EUR" in renewed and "Renews" in renewed
    assert browser.post(f"/renewal-offers/{offer['id']}/decline").status_code == 409


def test_a_manager_re_rates_a_book_from_the_screens_and_reads_the_report(
    app: Flask, cover: Tenant, admin: Staff, agent: Staff, products: dict
) -> None:
    browser = admin.browser()
    assert 'id="rerate"' in browser.get("/policies").text
    assert 'id="rerate"' not in agent.browser().get("/policies").text
    assert agent.browser().post("/policies/rerate", data={"product": BOOK_LINE}).status_code == 403
    assert browser.post("/policies/rerate", data={"product": "nothing"}).status_code == 422

    started = browser.post("/policies/rerate", data={"product": BOOK_LINE})
    assert started.status_code == 303
    report_path = started.headers["Location"]
    waiting = browser.get(report_path).text
    assert 'id="rerate-progress"' in waiting and 'id="rerate-report"' not in waiting

    jobs_support.drain(app, "bulk")
    job_id = uuid.UUID(report_path.rsplit("/", 1)[1])
    job = jobs_support.load_job(app, cover, job_id)
    assert job.status == "finished", job.error
    done = browser.get(report_path).text
    assert 'id="rerate-report"' in done
    assert f"{Decimal(job.result['rerated_total']):,.2f}" in done
    # No such job (another tenant's id finds nothing here either): no report.
    assert browser.get(f"/policies/rerating/{uuid.uuid4()}").status_code == 404
