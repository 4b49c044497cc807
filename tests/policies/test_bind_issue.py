"""Binding a quote and issuing the policy: what binding requires (the agent's licence,
life declarations, a known frequency), the states, version 1, and policy numbers from
the tenant's pattern, distinct and gapless under concurrent issue."""

from __future__ import annotations

import re
import threading
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from flask import Flask
from sqlalchemy import event, select

from core import settings
from core.db import db
from core.policies import operations
from core.policies.lifecycle import IllegalTransition
from core.policies.models import Policy, PolicyVersion, Quote
from core.policies.rules import PolicyInvalid
from core.policies.terms import add_years
from core.tenancy import Tenant, tenant_context
from tests.conftest import host_client
from tests.policies.conftest import (
    LIFE,
    Staff,
    acting,
    bind,
    bound,
    issued,
    make_staff,
    new_customer,
    plain_year_start,
    quote,
)
from tests.security.conftest import audit_entries, last_audit_id


def test_bind_makes_a_bound_policy_with_version_one_and_marks_the_quote(
    app: Flask, cover: Tenant, agent: Staff, products: dict
) -> None:
    customer = new_customer(agent)
    start = plain_year_start()
    offered = quote(agent, customer["id"], start=start)
    mark = last_audit_id(app, cover)

    answer = bind(agent, offered["id"], payment_frequency="quarterly")

    assert answer.status_code == 201, answer.json
    policy = answer.json
    assert (policy["state"], policy["number"], policy["issued_at"]) == ("bound", None, None)
    assert (policy["start_date"], policy["end_date"]) == (
        start.isoformat(),
        add_years(start, 1).isoformat(),
    )
    assert (policy["premium"], policy["currency"]) == ("1500.00", "EUR")
    assert policy["payment_frequency"] == "quarterly"
    assert (policy["customer_id"], policy["agent_id"]) == (customer["id"], agent.agent_id)
    (version,) = policy["versions"]
    # New business: the whole first year's premium moves.
    assert (version["version"], version["kind"], version["adjustment"]) == (
        1,
        "new_business",
        "1500.00",
    )
    assert version["trace"] == offered["trace"]
    assert [e.entity_id for e in audit_entries(app, cover, "policies.bind", mark)] == [
        str(policy["id"])
    ]
    with app.app_context(), tenant_context(cover):
        assert db.session.get(Quote, offered["id"]).status == "bound"
    # A quote binds once.
    again = bind(agent, offered["id"])
    assert again.status_code == 409
    assert "already bound" in again.json["detail"]


def test_issue_numbers_the_policy_from_the_default_pattern_and_puts_it_in_force(
    app: Flask, cover: Tenant, agent: Staff, products: dict
) -> None:
    customer = new_customer(agent)
    policy = bound(agent, customer["id"])

    answer = agent.call("POST", f"/policies/{policy['id']}/issue")

    assert answer.status_code == 200, answer.json
    issued_policy = answer.json
    year = date.fromisoformat(policy["start_date"]).year
    assert re.fullmatch(rf"POL-{year}-\d{{6}}", issued_policy["number"]), issued_policy["number"]
    assert issued_policy["state"] == "in_force" and issued_policy["issued_at"]
    # Issued once: a second issue is an illegal transition.
    twice = agent.call("POST", f"/policies/{policy['id']}/issue")
    assert twice.status_code == 409
    assert twice.json["detail"].startswith(f"Policy {issued_policy['number']} is in force")


def test_issuing_takes_the_database_set_updated_at_from_its_update(
    app: Flask, cover: Tenant, agent: Staff, products: dict
) -> None:
    """`updated_at` is set by the database: the UPDATE returns it (eager defaults),
    instead of a SELECT of its own for the answer and the audit entry."""
    customer = new_customer(agent)
    policy = bound(agent, customer["id"])
    with app.app_context():
        engine = db.engine
    sent: list[str] = []

    def remember(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        sent.append(" ".join(statement.split()))

    event.listen(engine, "before_cursor_execute", remember)
    try:
        answer = agent.call("POST", f"/policies/{policy['id']}/issue")
    finally:
        event.remove(engine, "before_cursor_execute", remember)

    assert answer.status_code == 200, answer.json
    (update,) = [s for s in sent if s.startswith("UPDATE policies SET")]
    assert "RETURNING policies.updated_at" in update
    assert not [s for s in sent if s.startswith("SELECT policies.updated_at")]


def test_the_tenants_number_pattern_is_honoured(
    app: Flask, cover: Tenant, agent: Staff, products: dict
) -> None:
    customer = new_customer(agent)
    start = plain_year_start()
    with app.app_context(), tenant_context(cover):
        settings.set("policy_number_pattern", "CV/{yyyy}/{mm}/{seq:04}")
        db.session.commit()
    try:
        first = issued(agent, customer["id"], start=start)["number"]
        second = issued(agent, customer["id"], start=start)["number"]
    finally:
        with app.app_context(), tenant_context(cover):
            settings.set("policy_number_pattern", "POL-{yyyy}-{seq:06}")
            db.session.commit()
    prefix = f"CV/{start.year:04d}/{start.month:02d}/"
    assert first.startswith(prefix) and second.startswith(prefix), (first, second)
    assert int(second[len(prefix) :]) == int(first[len(prefix) :]) + 1
    assert len(first) == len(prefix) + 4


def test_twenty_concurrent_issues_take_distinct_gapless_numbers(
    app: Flask, cover: Tenant, agent: Staff, products: dict
) -> None:
    customer = new_customer(agent)
    start = plain_year_start()
    ids = [bound(agent, customer["id"], start=start)["id"] for _ in range(20)]
    barrier = threading.Barrier(len(ids))
    numbers: dict[int, str] = {}
    failures: list[str] = []

    def issue(policy_id: int) -> None:
        # Each thread has its own client, app context, session and connection.
        client = host_client(app, cover.slug)
        barrier.wait()
        answer = client.post(
            f"/api/v1/policies/{policy_id}/issue",
            headers={"Authorization": f"Bearer {agent.token}"},
        )
        if answer.status_code != 200:
            failures.append(f"{policy_id}: {answer.status_code} {answer.text}")
        else:
            numbers[policy_id] = answer.json["number"]

    threads = [threading.Thread(target=issue, args=(policy_id,)) for policy_id in ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert failures == []
    assert len(numbers) == 20 and len(set(numbers.values())) == 20
    sequence = sorted(int(number.rsplit("-", 1)[1]) for number in numbers.values())
    assert sequence == list(range(sequence[0], sequence[0] + 20)), sequence
    with app.app_context(), tenant_context(cover):
        rows = db.session.execute(select(Policy.id, Policy.number).where(Policy.id.in_(ids)))
        stored = {row.id: row.number for row in rows}
    assert stored == numbers


def test_an_agent_whose_licence_ends_before_the_start_date_cannot_bind(
    app: Flask, cover: Tenant, products: dict
) -> None:
    start = plain_year_start(after_days=40)
    lapsing = make_staff(
        app, cover, "agent", agent=True, licence_expires_on=start - timedelta(days=1)
    )
    customer = new_customer(lapsing)
    offered = quote(lapsing, customer["id"], start=start)

    answer = bind(lapsing, offered["id"])

    assert answer.status_code == 422
    (message,) = answer.json["errors"]["agent_id"]
    assert f"LIC-{lapsing.user_id}" in message
    assert (start - timedelta(days=1)).isoformat() in message and start.isoformat() in message
    assert "cannot bind" in message
    with app.app_context(), tenant_context(cover):
        assert db.session.get(Quote, offered["id"]).status == "open"
        assert db.session.scalar(select(Policy.id).where(Policy.quote_id == offered["id"])) is None

    # Valid on the last day of the licence: a quote starting that day binds.
    last_day = bound(lapsing, customer["id"], start=start - timedelta(days=1))
    assert last_day["state"] == "bound"


def test_binding_names_every_bad_field(
    app: Flask, cover: Tenant, agent: Staff, products: dict
) -> None:
    customer = new_customer(agent)
    offered = quote(agent, customer["id"])

    answer = bind(agent, offered["id"], payment_frequency="weekly", declarations={"x": True})

    assert answer.status_code == 422
    assert set(answer.json["errors"]) == {"payment_frequency", "declarations.x"}
    unknown = bind(agent, offered["id"], colour="red")
    assert (unknown.status_code, list(unknown.json["errors"])) == (422, ["colour"])


def test_term_life_binds_only_with_its_declarations_for_the_whole_term(
    app: Flask, cover: Tenant, agent: Staff, products: dict
) -> None:
    customer = new_customer(agent)
    start = plain_year_start()
    risk = {
        "issue_age": 40,
        "term_years": 10,
        "sum_assured": "100000",
        "sex": "male",
        "smoker": False,
    }
    offered = quote(agent, customer["id"], line=LIFE, start=start, risk=risk)

    missing = bind(
        agent, offered["id"], declarations={"good_health": True, "smoker_status_true": False}
    )
    assert missing.status_code == 422
    assert missing.json["errors"] == {
        "declarations.smoker_status_true": [
            "Must be confirmed to bind; otherwise refer the case to underwriting."
        ],
        "declarations.no_hazardous_occupation": ["This field is required."],
    }

    answers = {"good_health": True, "smoker_status_true": True, "no_hazardous_occupation": True}
    answer = bind(agent, offered["id"], declarations=answers)
    assert answer.status_code == 201, answer.json
    policy = answer.json
    assert policy["declarations"] == answers
    # A ten-year level term; version 1 moves the first year's premium.
    assert policy["end_date"] == add_years(start, 10).isoformat()
    assert policy["premium"] == offered["premium"]
    assert policy["versions"][0]["adjustment"] == offered["premium"]


def test_bind_as_an_operation_refuses_and_writes_nothing(
    app: Flask, cover: Tenant, agent: Staff, products: dict
) -> None:
    customer = new_customer(agent)
    offered = quote(agent, customer["id"])
    with acting(app, cover, agent.user_id):
        try:
            operations.bind(offered["id"], payment_frequency=None, declarations=[])
        except PolicyInvalid as exc:
            assert list(exc.errors) == ["declarations"]
        else:
            raise AssertionError("bound with declarations that are not an object")
        policy = operations.bind(offered["id"])
        assert policy.payment_frequency == "annual"
        versions = db.session.scalars(
            select(PolicyVersion).where(PolicyVersion.policy_id == policy.id)
        ).all()
        assert [(v.version, v.premium) for v in versions] == [(1, Decimal("1500.00"))]
        try:
            operations.bind(offered["id"])
        except IllegalTransition as exc:
            assert exc.state == "bound"
        else:
            raise AssertionError("bound twice")


def test_business_nobody_places_is_not_bound(
    app: Flask, cover: Tenant, admin: Staff, products: dict
) -> None:
    unassigned = new_customer(admin)
    assert unassigned["agent_id"] is None
    answer = bind(admin, quote(admin, unassigned["id"])["id"])
    assert answer.status_code == 422
    assert answer.json["errors"] == {
        "agent_id": [
            "No agent places this business: assign the customer to a licensed agent first."
        ]
    }
