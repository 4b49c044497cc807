"""Endorsements and cancellations: new versions, re-rated, with pro-rata money computed
by hand; every version readable; refusals naming fields; illegal states answered 409.

The test line rates 1.5% of the sum insured less a no-claim discount (0/10/20/30%);
terms start on a date whose year has 365 days (conftest.plain_year_start).
"""

from __future__ import annotations

from datetime import date, timedelta

from flask import Flask

from core.tenancy import Tenant
from tests.policies.conftest import (
    Staff,
    bound,
    home_risk,
    issued,
    new_customer,
    plain_year_start,
)
from tests.policies.line_plugin import TARIFF_LINE
from tests.security.conftest import audit_entries, last_audit_id


def _on(start: date, days: int) -> str:
    return (start + timedelta(days=days)).isoformat()


def test_endorsements_and_a_cancellation_by_hand(
    app: Flask, cover: Tenant, agent: Staff, products: dict
) -> None:
    customer = new_customer(agent)
    start = plain_year_start()
    policy = issued(agent, customer["id"], start=start)
    assert policy["premium"] == "1500.00"
    mark = last_audit_id(app, cover)

    # Day 101 (265 days left): 120,000 insured -> 1,800.00 a year.
    # (1,800 - 1,500) x 265 / 365 = 217.808... -> 217.81
    raised = agent.call(
        "POST",
        f"/policies/{policy['id']}/endorsements",
        json={
            "effective_from": _on(start, 100),
            "risk_changes": {"sum_insured": "120000"},
            "reason": "Extension built",
        },
    )
    assert raised.status_code == 201, raised.json
    assert (raised.json["version"], raised.json["kind"]) == (2, "endorsement")
    assert (raised.json["premium"], raised.json["adjustment"]) == ("1800.00", "217.81")
    assert raised.json["risk"] == {"sum_insured": "120000", "claim_free_years": 0}

    # Day 201 (165 days left): 2 claim-free years, 20% off -> 1,440.00 a year.
    # (1,440 - 1,800) x 165 / 365 = -162.739... -> -162.74
    lowered = agent.call(
        "POST",
        f"/policies/{policy['id']}/endorsements",
        json={
            "effective_from": _on(start, 200),
            "risk_changes": {"claim_free_years": 2},
            "reason": "Claims record from the previous insurer",
        },
    )
    assert lowered.status_code == 201, lowered.json
    assert (lowered.json["premium"], lowered.json["adjustment"]) == ("1440.00", "-162.74")

    # Cancelled from day 301 (65 days left): 1,440 x 65 / 365 = 256.438... -> 256.44 back.
    cancelled = agent.call(
        "POST",
        f"/policies/{policy['id']}/cancel",
        json={"effective_on": _on(start, 300), "reason": "House sold"},
    )
    assert cancelled.status_code == 200, cancelled.json
    assert (cancelled.json["kind"], cancelled.json["adjustment"]) == ("cancellation", "-256.44")
    assert cancelled.json["premium"] == "1440.00"

    read = agent.call("GET", f"/policies/{policy['id']}").json
    assert (read["state"], read["cancelled_on"], read["cancel_reason"]) == (
        "cancelled",
        _on(start, 300),
        "House sold",
    )
    assert read["premium"] == "1440.00"
    assert [
        (v["version"], v["kind"], v["effective_from"], v["premium"], v["adjustment"])
        for v in read["versions"]
    ] == [
        (1, "new_business", start.isoformat(), "1500.00", "1500.00"),
        (2, "endorsement", _on(start, 100), "1800.00", "217.81"),
        (3, "endorsement", _on(start, 200), "1440.00", "-162.74"),
        (4, "cancellation", _on(start, 300), "1440.00", "-256.44"),
    ]
    # Every earlier version keeps its own risk and trace.
    assert read["versions"][0]["risk"]["sum_insured"] == "100000"
    assert read["versions"][1]["trace"][1]["result"] == "1800.00"
    actions = [
        (e.action, e.entity_id)
        for action in ("policies.endorse", "policies.cancel")
        for e in audit_entries(app, cover, action, mark)
    ]
    assert actions == [
        ("policies.endorse", str(policy["id"])),
        ("policies.endorse", str(policy["id"])),
        ("policies.cancel", str(policy["id"])),
    ]

    # A cancelled policy is changed no more.
    again = agent.call(
        "POST",
        f"/policies/{policy['id']}/cancel",
        json={"effective_on": _on(start, 310), "reason": "again"},
    )
    assert again.status_code == 409
    endorse = agent.call(
        "POST",
        f"/policies/{policy['id']}/endorsements",
        json={
            "effective_from": _on(start, 310),
            "risk_changes": {"sum_insured": "1"},
            "reason": "x",
        },
    )
    assert endorse.status_code == 409
    assert "cannot be endorsed" in endorse.json["detail"]


def test_cancelling_on_the_first_day_returns_the_whole_premium(
    app: Flask, cover: Tenant, agent: Staff, products: dict
) -> None:
    start = plain_year_start()
    policy = issued(agent, new_customer(agent)["id"], start=start, risk=home_risk("33333"))
    # 33,333 x 1.5% = 499.995 -> 500.00 (half-up); all of it back.
    assert policy["premium"] == "500.00"
    answer = agent.call(
        "POST",
        f"/policies/{policy['id']}/cancel",
        json={"effective_on": start.isoformat(), "reason": "Changed their mind"},
    )
    assert (answer.status_code, answer.json["adjustment"]) == (200, "-500.00")


def test_bad_endorsements_name_each_field_and_write_nothing(
    app: Flask, cover: Tenant, agent: Staff, products: dict
) -> None:
    start = plain_year_start()
    policy = issued(agent, new_customer(agent)["id"], start=start)
    path = f"/policies/{policy['id']}/endorsements"

    def refused(body: dict) -> dict:
        answer = agent.call("POST", path, json=body)
        assert answer.status_code == 422, answer.json
        return answer.json["errors"]

    end = date.fromisoformat(policy["end_date"])
    assert set(
        refused(
            {
                "effective_from": end.isoformat(),
                "risk_changes": {"colour": "red"},
                "reason": "  ",
            }
        )
    ) == {"effective_from", "risk_changes.colour", "reason"}
    assert set(refused({"effective_from": "soon", "risk_changes": {}, "reason": "x"})) == {
        "effective_from",
        "risk_changes",
    }
    # The plugin's refusal, named after the request's field.
    assert refused(
        {
            "effective_from": _on(start, 5),
            "risk_changes": {"sum_insured": "-5"},
            "reason": "x",
        }
    ) == {"risk_changes.sum_insured": ["Must be a positive amount."]}
    assert list(
        refused(
            {
                "effective_from": _on(start, 5),
                "risk_changes": {"sum_insured": "100000"},
                "reason": "x",
            }
        )
    ) == ["risk_changes"]
    assert list(
        refused({"effective_from": _on(start, -1), "risk_changes": {"sum_insured": "2"}})
    ) == ["effective_from", "reason"]
    assert list(refused({"effective_from": _on(start, 1), "surprise": 1})) == ["surprise"]
    assert refused(
        {"effective_from": _on(start, 5), "risk_changes": {"term_years": 3}, "reason": "x"}
    ) == {"risk_changes.term_years": ["The term is fixed at binding: quote a new policy."]}
    assert len(agent.call("GET", f"/policies/{policy['id']}").json["versions"]) == 1

    # Not before the version in force.
    ok = agent.call(
        "POST",
        path,
        json={
            "effective_from": _on(start, 50),
            "risk_changes": {"sum_insured": "110000"},
            "reason": "x",
        },
    )
    assert ok.status_code == 201
    assert (
        "before it"
        in refused(
            {
                "effective_from": _on(start, 49),
                "risk_changes": {"sum_insured": "120000"},
                "reason": "x",
            }
        )["effective_from"][0]
    )


def test_a_bound_policy_is_issued_before_it_can_be_changed(
    app: Flask, cover: Tenant, agent: Staff, products: dict
) -> None:
    start = plain_year_start()
    policy = bound(agent, new_customer(agent)["id"], start=start)
    cancel = agent.call(
        "POST",
        f"/policies/{policy['id']}/cancel",
        json={"effective_on": start.isoformat(), "reason": "x"},
    )
    assert cancel.status_code == 409
    assert cancel.json["detail"] == f"Policy #{policy['id']} is bound: it cannot be cancelled."
    endorse = agent.call(
        "POST",
        f"/policies/{policy['id']}/endorsements",
        json={"effective_from": start.isoformat(), "risk_changes": {"sum_insured": "1"}},
    )
    assert endorse.status_code == 409


def test_an_endorsement_rates_on_the_tariff_of_the_original_start_date(
    app: Flask, cover: Tenant, agent: Staff, products: dict, new_tariff: date
) -> None:
    start = plain_year_start()
    assert start < new_tariff
    policy = issued(agent, new_customer(agent)["id"], line=TARIFF_LINE, start=start)
    effective = start + timedelta(days=100)
    assert effective > new_tariff
    answer = agent.call(
        "POST",
        f"/policies/{policy['id']}/endorsements",
        json={
            "effective_from": effective.isoformat(),
            "risk_changes": {"sum_insured": "200000"},
            "reason": "Revaluation",
        },
    )
    assert answer.status_code == 201, answer.json
    # 200,000 x 1.5% (the table in force on the start date), not the new 2.0%: 3,000.00.
    # (3,000 - 1,500) x 265 / 365 = 1,089.041... -> 1,089.04
    assert answer.json["premium"] == "3000.00"
    assert answer.json["rate_table_version"] == "pbtest_tariff-default"
    assert answer.json["adjustment"] == "1089.04"
