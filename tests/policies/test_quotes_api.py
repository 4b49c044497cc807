"""Quotes over the API: 201 with the premium and its trace, 422 naming each field with
nothing written, replay to the cent, reach (404) across books and tenants, and RBAC.

Motor figures are PRODUCT.md's reference (14,391.12); the others are worked in the
test that uses them.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from core.customers.models import Customer
from core.db import db
from core.policies import quotes
from core.policies.models import Quote
from core.products import operations, rating
from core.tenancy import Tenant, tenant_context
from tests.products.fixtures import *  # noqa: F403  (the fixtures)
from tests.products.fixtures import (
    LIFE,
    MOTOR,
    REFERENCE_LIFE,
    REFERENCE_MOTOR,
    Staff,
    as_user,
    quote_body,
)
from tests.security.conftest import audit_entries, last_audit_id


def _quote_count(app: Flask, tenant: Tenant) -> int:
    with app.app_context(), tenant_context(tenant):
        return db.session.scalar(select(func.count()).select_from(Quote))


def _post(caller: Staff, body: Any) -> Any:
    return caller.call("POST", "/quotes", json=body)


def test_a_motor_quote_is_created_with_its_premium_and_trace(
    app: Flask, quoting: Tenant, q_agent: Staff, agent_customer: dict[str, Any]
) -> None:
    mark = last_audit_id(app, quoting)
    answer = _post(q_agent, quote_body(agent_customer["id"]))
    assert answer.status_code == 201, answer.json
    quote = answer.json
    assert quote["premium"] == "14391.12" and isinstance(quote["premium"], str)
    assert (quote["currency"], quote["product"], quote["status"]) == ("INR", MOTOR, "open")
    assert (quote["customer_id"], quote["agent_id"]) == (agent_customer["id"], q_agent.agent_id)
    assert quote["start_date"] == date.today().isoformat()
    assert quote["rate_table_version"] == "default-1"
    trace = {step["name"]: step for step in quote["trace"]}
    assert trace["idv"]["result"] == "560000.00"
    assert trace["voluntary_deductible_discount"]["result"] == "1500.00"
    assert (trace["no_claim_bonus"]["factor"], trace["no_claim_bonus"]["sign"]) == ("35%", -1)
    assert answer.headers["Location"].endswith(f"/api/v1/quotes/{quote['id']}")
    again = q_agent.call("GET", f"/quotes/{quote['id']}")
    assert again.status_code == 200 and again.json == quote
    [entry] = audit_entries(app, quoting, "quotes.create", mark)
    assert entry.entity_id == str(quote["id"])


def test_a_term_life_quote(app: Flask, q_agent: Staff, agent_customer: dict[str, Any]) -> None:
    answer = _post(q_agent, quote_body(agent_customer["id"], LIFE))
    assert answer.status_code == 201, answer.json
    assert (answer.json["premium"], answer.json["product"]) == ("133.32", LIFE)
    assert answer.json["risk"] == REFERENCE_LIFE


@pytest.mark.parametrize(
    ("changes", "premium"),
    [
        # Zone B, 1001-1500cc, <=60 months: 3.191% -> OD 17,869.60; discount 1,500.00;
        # bonus 35% of 16,369.60 = 5,729.36; 17,869.60 - 1,500 - 5,729.36 + 3,416.
        ({"zone": "B"}, "14056.24"),
        # 800cc, 6 months, no deductible, no bonus: IDV 760,000.00; 3.127% -> 23,765.20;
        # third party 2,094: 25,859.20.
        (
            {
                "engine_cc": 800,
                "vehicle_age_months": 6,
                "voluntary_deductible": "0",
                "claim_free_years": 0,
            },
            "25859.20",
        ),
        # A JSON number with decimals is read exactly (800000.00), not as a float.
        ({"vehicle_value": Decimal("800000.00")}, "14391.12"),
    ],
)
def test_other_motor_risks(
    q_agent: Staff, agent_customer: dict[str, Any], changes: dict[str, Any], premium: str
) -> None:
    body = quote_body(agent_customer["id"], risk=changes)
    answer = _post(q_agent, body)
    assert answer.status_code == 201, answer.json
    assert answer.json["premium"] == premium


@pytest.mark.parametrize(
    ("product", "risk", "fields"),
    [
        (MOTOR, {"zone": "C"}, {"risk.zone"}),
        (MOTOR, {"vehicle_value": "-800000"}, {"risk.vehicle_value"}),
        (MOTOR, {"voluntary_deductible": "3000"}, {"risk.voluntary_deductible"}),
        (MOTOR, {"vehicle_age_months": 61}, {"risk.agreed_value"}),
        (
            MOTOR,
            {
                "zone": "C",
                "vehicle_value": "-1",
                "voluntary_deductible": 3000,
                "vehicle_age_months": 90,
                "colour": "red",
            },
            {
                "risk.zone",
                "risk.vehicle_value",
                "risk.voluntary_deductible",
                "risk.agreed_value",
                "risk.colour",
            },
        ),
        (LIFE, {"issue_age": 150}, {"risk.issue_age"}),
        (LIFE, {"term_years": 99}, {"risk.term_years"}),
        (LIFE, {"issue_age": 95, "term_years": 40}, None),
    ],
)
def test_every_bad_risk_field_is_named_and_nothing_is_written(
    app: Flask,
    quoting: Tenant,
    q_agent: Staff,
    agent_customer: dict[str, Any],
    product: str,
    risk: dict[str, Any],
    fields: set[str] | None,
) -> None:
    before = _quote_count(app, quoting)
    answer = _post(q_agent, quote_body(agent_customer["id"], product, risk=risk))
    assert answer.status_code == 422, answer.json
    assert answer.mimetype == "application/problem+json"
    errors = answer.json["errors"]
    if fields is None:  # age and term together beyond the table: either may be named
        assert set(errors) & {"risk.issue_age", "risk.term_years"}, errors
    else:
        assert set(errors) == fields, errors
    assert all(isinstance(m, list) and m for m in errors.values())
    assert _quote_count(app, quoting) == before


def test_bad_quote_requests_name_each_field(
    app: Flask, quoting: Tenant, q_agent: Staff, agent_customer: dict[str, Any]
) -> None:
    before = _quote_count(app, quoting)
    missing = _post(q_agent, {"color": "blue"})
    assert missing.status_code == 422
    assert set(missing.json["errors"]) == {"product", "customer_id", "start_date", "risk", "color"}
    assert _post(q_agent, [1, 2]).json["errors"] == {"body": ["Send a JSON object."]}
    customer = agent_customer["id"]
    unknown = _post(q_agent, quote_body(customer, product="travel"))
    assert unknown.json["errors"] == {"product": ["No product 'travel' is sold here."]}
    too_early = (date.today() - timedelta(days=400)).isoformat()
    cases = {
        "start_date": quote_body(customer, start_date=too_early),
        "risk": quote_body(customer) | {"risk": "zone A"},
    }
    for field, body in cases.items():
        answer = _post(q_agent, body)
        assert (answer.status_code, list(answer.json["errors"])) == (422, [field]), answer.json
    not_a_date = _post(q_agent, quote_body(customer, start_date="31/12/2026", risk={"zone": "Q"}))
    assert set(not_a_date.json["errors"]) == {"start_date", "risk.zone"}
    # An agent writes quotes for the customer's own agent only.
    other = _post(q_agent, quote_body(customer, agent_id=q_agent.agent_id + 1000))
    assert list(other.json["errors"]) == ["agent_id"]
    assert _quote_count(app, quoting) == before


def test_a_quote_replays_from_its_trace_to_the_cent(
    app: Flask, quoting: Tenant, q_agent: Staff, agent_customer: dict[str, Any]
) -> None:
    created = {}
    for product, risk in ((MOTOR, {"zone": "B", "claim_free_years": 7}), (LIFE, {})):
        answer = _post(q_agent, quote_body(agent_customer["id"], product, risk=risk))
        assert answer.status_code == 201, answer.json
        created[product] = answer.json
    with app.app_context(), tenant_context(quoting):
        user = as_user(q_agent)
        for stored in created.values():
            quote = quotes.get_quote(stored["id"], user)
            replayed = quotes.replay_quote(quote)
            assert f"{replayed.premium:.2f}" == stored["premium"]
            assert replayed.trace == stored["trace"]
            assert replayed.rate_table_version == stored["rate_table_version"]
            assert quotes.replays_exactly(quote)
            # The check is real: a premium changed in the row no longer replays.
            quote.premium += Decimal("0.01")
            assert not quotes.replays_exactly(quote)
            assert rating.differences(quote.premium, quote.trace, replayed)
        db.session.rollback()


def test_quotes_are_reached_through_the_customers_book(
    app: Flask,
    q_agent: Staff,
    q_other_agent: Staff,
    q_admin: Staff,
    q_manager: Staff,
    beta_quoter: Staff,
    agent_customer: dict[str, Any],
) -> None:
    quote = _post(q_agent, quote_body(agent_customer["id"])).json
    # Another agent: neither the quote nor the customer exists for them.
    assert q_other_agent.call("GET", f"/quotes/{quote['id']}").status_code == 404
    assert _post(q_other_agent, quote_body(agent_customer["id"])).status_code == 404
    # An admin sees every book; a manager only their teams' (this one manages none).
    assert q_admin.call("GET", f"/quotes/{quote['id']}").status_code == 200
    assert q_manager.call("GET", f"/quotes/{quote['id']}").status_code == 404
    # Another tenant: the id means nothing there, nor does its token here.
    assert beta_quoter.call("GET", f"/quotes/{quote['id']}").status_code == 404
    assert _post(beta_quoter, quote_body(agent_customer["id"])).status_code == 404
    foreign = q_agent.call("GET", "/quotes/1", headers={"Authorization": "Bearer x"})
    assert foreign.status_code == 401
    assert q_agent.call("GET", "/quotes/2000000000").status_code == 404


def test_a_customer_out_of_reach_is_404_before_any_422_and_nothing_is_written(
    app: Flask,
    quoting: Tenant,
    q_agent: Staff,
    q_other_agent: Staff,
    q_admin: Staff,
    agent_customer: dict[str, Any],
) -> None:
    customer = agent_customer["id"]
    before, entries = _quote_count(app, quoting), last_audit_id(app, quoting)
    bad_risk = quote_body(customer, risk={"zone": "Q"})
    # Out of the caller's book: 404 whatever else is wrong, so nothing says it exists.
    assert _post(q_other_agent, bad_risk).status_code == 404
    assert _post(q_other_agent, quote_body(customer)).status_code == 404
    assert _post(q_agent, bad_risk).status_code == 422
    # A deactivated customer cannot be quoted, even by someone whose reach is the
    # whole brokerage.
    with app.app_context(), tenant_context(quoting):
        db.session.get(Customer, customer).is_active = False
        db.session.commit()
    try:
        assert _post(q_agent, quote_body(customer)).status_code == 404
        assert (
            _post(q_admin, quote_body(customer, agent_id=q_other_agent.agent_id)).status_code == 404
        )
    finally:
        with app.app_context(), tenant_context(quoting):
            db.session.get(Customer, customer).is_active = True
            db.session.commit()
    assert _quote_count(app, quoting) == before
    assert audit_entries(app, quoting, "quotes.create", entries) == []


def test_a_quote_is_written_for_the_customers_agent_or_the_one_named(
    app: Flask, q_agent: Staff, q_other_agent: Staff, q_admin: Staff, agent_customer: dict[str, Any]
) -> None:
    own = _post(q_admin, quote_body(agent_customer["id"]))
    assert (own.status_code, own.json["agent_id"]) == (201, q_agent.agent_id)
    named = _post(q_admin, quote_body(agent_customer["id"], agent_id=q_other_agent.agent_id))
    assert (named.status_code, named.json["agent_id"]) == (201, q_other_agent.agent_id)
    # What the answer says is what was stored.
    assert q_admin.call("GET", f"/quotes/{named.json['id']}").json == named.json


def test_a_customer_cannot_quote_or_read_products(
    app: Flask, quoting: Tenant, q_customer_user: Staff, agent_customer: dict[str, Any]
) -> None:
    before = _quote_count(app, quoting)
    assert _post(q_customer_user, quote_body(agent_customer["id"])).status_code == 403
    assert q_customer_user.call("GET", "/products").status_code == 403
    assert _quote_count(app, quoting) == before


def test_products_list_their_risk_schema(
    app: Flask, quoting: Tenant, q_agent: Staff, q_admin: Staff, products_on: dict[str, int]
) -> None:
    answer = q_agent.call("GET", "/products")
    assert answer.status_code == 200
    by_code = {item["code"]: item for item in answer.json["items"]}
    assert set(by_code) == {MOTOR, LIFE}
    zone = next(f for f in by_code[MOTOR]["risk_fields"] if f["name"] == "zone")
    assert zone == {
        "name": "zone",
        "label": "Zone",
        "type": "choice",
        "required": True,
        "choices": ["A", "B"],
        "help": "",
    }
    assert [f["name"] for f in by_code[MOTOR]["risk_fields"]] == [*REFERENCE_MOTOR, "agreed_value"]
    assert by_code[LIFE]["revival_years"] == 5 and by_code[MOTOR]["revival_years"] is None
    assert by_code[MOTOR]["rate_table_version"] == "default-1"
    # A product taken off sale leaves the list and cannot be quoted.
    with app.app_context(), tenant_context(quoting):
        operations.disable_product(products_on[LIFE], user=as_user(q_admin))
    try:
        assert [i["code"] for i in q_agent.call("GET", "/products").json["items"]] == [MOTOR]
    finally:
        with app.app_context(), tenant_context(quoting):
            operations.enable_product(LIFE, user=as_user(q_admin))


def test_the_openapi_document_describes_quotes_and_products(q_agent: Staff) -> None:
    document = q_agent.call("GET", "/openapi.json").json
    assert {"post"} <= set(document["paths"]["/quotes"])
    assert "get" in document["paths"]["/quotes/{quote_id}"]
    assert "get" in document["paths"]["/products"]
    assert "risk" in document["components"]["schemas"]["NewQuote"]["properties"]
