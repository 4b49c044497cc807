"""The policy state machine: allowed and illegal moves, grace, lapse and revival by the
product's rules, and the daily expiry job run through core.jobs."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from flask import Flask
from sqlalchemy import select

from core.db import db
from core.jobs import PERIODIC
from core.policies import lifecycle
from core.policies.lifecycle import TRANSITIONS, IllegalTransition
from core.policies.models import POLICY_STATES, Policy, PolicyVersion, RenewalOffer
from core.policies.terms import add_years
from core.tenancy import Tenant, tenant_context
from tests.policies.conftest import (
    MOTOR,
    Staff,
    issued,
    new_customer,
    plain_year_start,
    run_job,
)
from tests.products.conftest import REFERENCE_MOTOR
from tests.security.conftest import audit_entries, last_audit_id


def test_the_transitions_are_those_of_product_md() -> None:
    assert set(TRANSITIONS) == set(POLICY_STATES)
    moves = {(state, to) for state, targets in TRANSITIONS.items() for to in targets}
    assert moves == {
        ("bound", "in_force"),
        ("in_force", "expired"),
        ("in_force", "cancelled"),
        ("in_force", "in_grace"),
        ("in_grace", "in_force"),
        ("in_grace", "lapsed"),
        ("in_grace", "cancelled"),
        ("lapsed", "in_force"),
    }
    for final in ("expired", "cancelled"):
        assert not TRANSITIONS[final]


def _state(app: Flask, tenant: Tenant, policy_id: int) -> str:
    with app.app_context(), tenant_context(tenant):
        return db.session.get(Policy, policy_id).state


def test_grace_lapse_and_revival_within_the_products_years(
    app: Flask, cover: Tenant, agent: Staff, products: dict
) -> None:
    start = plain_year_start()
    policy_id = issued(agent, new_customer(agent)["id"], start=start)["id"]
    with app.app_context(), tenant_context(cover):
        with pytest.raises(IllegalTransition, match="not lapsed"):
            lifecycle.revive(policy_id, start)
        with pytest.raises(IllegalTransition, match="cannot become lapsed"):
            lifecycle.lapse(policy_id, start)
        lifecycle.start_grace(policy_id, start + timedelta(days=30))
        lifecycle.end_grace(policy_id, start + timedelta(days=40))
        assert db.session.get(Policy, policy_id).state == "in_force"
        lifecycle.start_grace(policy_id, start + timedelta(days=60))
        lapsed = start + timedelta(days=90)
        lifecycle.lapse(policy_id, lapsed)
        assert lifecycle.lapsed_on(policy_id) == lapsed
        # The test line revives for 2 years after the lapse, to the day.
        with pytest.raises(IllegalTransition, match=f"until {add_years(lapsed, 2)}"):
            lifecycle.revive(policy_id, add_years(lapsed, 2) + timedelta(days=1))
        lifecycle.revive(policy_id, add_years(lapsed, 2))
    assert _state(app, cover, policy_id) == "in_force"


def test_a_lapsed_motor_policy_is_requoted_never_revived(
    app: Flask, cover: Tenant, agent: Staff, products: dict
) -> None:
    start = plain_year_start()
    policy_id = issued(
        agent, new_customer(agent)["id"], line=MOTOR, start=start, risk=REFERENCE_MOTOR
    )["id"]
    with app.app_context(), tenant_context(cover):
        lifecycle.start_grace(policy_id, start + timedelta(days=30))
        lifecycle.lapse(policy_id, start + timedelta(days=60))
        with pytest.raises(IllegalTransition, match="does not revive lapsed policies"):
            lifecycle.revive(policy_id, start + timedelta(days=61))
        with pytest.raises(IllegalTransition, match="not in grace"):
            lifecycle.end_grace(policy_id, start + timedelta(days=61))
    assert _state(app, cover, policy_id) == "lapsed"


def test_an_illegal_move_leaves_the_policy_as_it_was(
    app: Flask, cover: Tenant, agent: Staff, products: dict
) -> None:
    policy = issued(agent, new_customer(agent)["id"])
    cancelled = agent.call(
        "POST",
        f"/policies/{policy['id']}/cancel",
        json={"effective_on": policy["start_date"], "reason": "x"},
    )
    assert cancelled.status_code == 200
    with app.app_context(), tenant_context(cover):
        for move in (lifecycle.start_grace, lifecycle.lapse, lifecycle.revive):
            with pytest.raises(IllegalTransition, match="is cancelled"):
                move(policy["id"], date.today())
    assert _state(app, cover, policy["id"]) == "cancelled"


def test_the_expiry_job_expires_policies_whose_term_ended(
    app: Flask, cover: Tenant, agent: Staff, products: dict
) -> None:
    customer = new_customer(agent)
    start = plain_year_start()
    ending = issued(agent, customer["id"], start=start)
    later = issued(agent, customer["id"], start=start + timedelta(days=1))
    end = date.fromisoformat(ending["end_date"])
    with app.app_context(), tenant_context(cover):
        db.session.add(
            RenewalOffer(
                policy_id=ending["id"],
                start_date=end,
                end_date=add_years(end, 1),
                risk={},
                premium="1.00",
                previous_premium="1.00",
                currency="EUR",
                trace=[],
                explanation=[],
                product_version_id=db.session.scalar(
                    select(PolicyVersion.product_version_id).where(
                        PolicyVersion.policy_id == ending["id"]
                    )
                ),
                rate_table_version="x",
            )
        )
        db.session.commit()
    mark = last_audit_id(app, cover)

    # The day before the end: still in force.
    early = run_job(
        app,
        cover,
        lifecycle.EXPIRY_JOB,
        {"today": (end - timedelta(days=1)).isoformat()},
        "scheduled",
    )
    assert early.status == "finished", early.error
    assert _state(app, cover, ending["id"]) == "in_force"

    job = run_job(app, cover, lifecycle.EXPIRY_JOB, {"today": end.isoformat()}, "scheduled")
    assert job.status == "finished", job.error
    assert job.result["expired"] >= 1 and job.result["on"] == end.isoformat()
    assert _state(app, cover, ending["id"]) == "expired"
    assert _state(app, cover, later["id"]) == "in_force"
    with app.app_context(), tenant_context(cover):
        offer = db.session.scalars(
            select(RenewalOffer).where(RenewalOffer.policy_id == ending["id"])
        ).one()
        assert offer.status == "withdrawn"
    expired = audit_entries(app, cover, "policies.expire", mark)
    assert str(ending["id"]) in {e.entity_id for e in expired}
    assert all(e.actor == f"job:{job.id}" for e in expired)

    # Idempotent: a second run on the same day expires nothing more.
    again = run_job(app, cover, lifecycle.EXPIRY_JOB, {"today": end.isoformat()}, "scheduled")
    assert again.result["expired"] == 0
    assert PERIODIC[lifecycle.EXPIRY_JOB].every == 24 * 3600
