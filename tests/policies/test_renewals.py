"""Renewal offers: made by the daily job within the tenant's window, re-rated on the
tariff in force at renewal, explained factor by factor (figures by hand), accepted or
declined; and bulk re-rating of a book as a job with progress."""

from __future__ import annotations

import json
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from core import settings
from core.db import db
from core.policies import renewals, rerating
from core.policies.models import Policy, RenewalOffer
from core.policies.rerating import RERATE_JOB
from core.policies.terms import add_years
from core.products import operations as product_operations
from core.tenancy import Tenant, tenant_context
from tests.policies.conftest import (
    LIFE,
    MOTOR,
    Staff,
    acting,
    home_risk,
    issued,
    new_customer,
    plain_year_start,
    run_job,
)
from tests.policies.line_plugin import BOOK_LINE, TARIFF_LINE
from tests.products.conftest import REFERENCE_LIFE, REFERENCE_MOTOR
from tests.security.conftest import audit_entries, last_audit_id

MINUS = "\u2212"


def offer_job(app: Flask, tenant: Tenant, today: date) -> dict[str, Any]:
    job = run_job(app, tenant, renewals.OFFERS_JOB, {"today": today.isoformat()}, "scheduled")
    assert job.status == "finished", job.error
    return job.result


def offers(staff: Staff, policy_id: int) -> list[dict[str, Any]]:
    answer = staff.call("GET", f"/policies/{policy_id}/renewal-offers")
    assert answer.status_code == 200, answer.json
    return answer.json


def test_the_explanation_compares_the_steps_by_name() -> None:
    def step(name: str, label: str, factor: str, sign: int, result: str) -> dict:
        return {"name": name, "label": label, "factor": factor, "sign": sign, "result": result}

    old = [
        step("idv", "Insured declared value", "30% depreciation", 0, "560000.00"),
        step("own_damage", "Own damage", "3.283%", 1, "18384.80"),
        step("no_claim_bonus", "No-claim bonus", "35%", -1, "5909.68"),
        step("third_party", "Third party", "1001-1500cc", 1, "3416.00"),
    ]
    new = [
        step("idv", "Insured declared value", "40% depreciation", 0, "480000.00"),
        step("own_damage", "Own damage", "3.283%", 1, "18384.80"),
        step("no_claim_bonus", "No-claim bonus", "45%", -1, "6931.21"),
        step("third_party", "Third party", "1001-1500cc", 1, "3416.00"),
        step("levy", "Road levy", "flat", 1, "10.00"),
    ]
    # 15,891.12 -> 14,879.59: -1,021.53 from the bonus, +10.00 levy, and 0.01 the steps
    # do not explain.
    items = renewals.explain(old, new, Decimal("15891.12"), Decimal("14879.60"))
    assert items == [
        {
            "step": "no_claim_bonus",
            "label": "No-claim bonus",
            "from": "35%",
            "to": "45%",
            "effect": "-1021.53",
        },
        {"step": "levy", "label": "Road levy", "from": None, "to": "flat", "effect": "10.00"},
        {"step": "other", "label": "Other changes", "from": None, "to": None, "effect": "0.01"},
    ]
    assert [renewals.describe(item) for item in items] == [
        f"No-claim bonus 35% \u2192 45%: {MINUS}1,021.53",
        "Road levy \u2192 flat: +10.00",
        "Other changes: +0.01",
    ]
    assert sum(Decimal(i["effect"]) for i in items) == Decimal("14879.60") - Decimal("15891.12")


def test_the_job_offers_within_the_window_once_and_accepting_renews(
    app: Flask, cover: Tenant, agent: Staff, products: dict
) -> None:
    start = plain_year_start()
    policy = issued(agent, new_customer(agent)["id"], start=start)
    end = date.fromisoformat(policy["end_date"])

    offer_job(app, cover, end - timedelta(days=31))
    assert offers(agent, policy["id"]) == []

    mark = last_audit_id(app, cover)
    result = offer_job(app, cover, end - timedelta(days=30))
    assert result["offered"] >= 1 and result["days"] == 30
    (offer,) = offers(agent, policy["id"])
    # The next year: one more claim-free year, 10% discount: 1,500.00 - 150.00 = 1,350.00.
    assert (offer["status"], offer["start_date"], offer["end_date"]) == (
        "offered",
        end.isoformat(),
        add_years(end, 1).isoformat(),
    )
    assert (offer["previous_premium"], offer["premium"]) == ("1500.00", "1350.00")
    assert offer["risk"] == {"sum_insured": "100000", "claim_free_years": 1}
    assert offer["explanation"] == [
        {
            "step": "no_claim_discount",
            "label": "No-claim discount",
            "from": "0%",
            "to": "10%",
            "effect": "-150.00",
            "text": f"No-claim discount 0% \u2192 10%: {MINUS}150.00",
        }
    ]
    assert str(policy["id"]) in {
        e.entity_id for e in audit_entries(app, cover, "policies.renewal_offer", mark)
    }
    # A second run, the next day, makes no second offer.
    offer_job(app, cover, end - timedelta(days=29))
    assert [o["id"] for o in offers(agent, policy["id"])] == [offer["id"]]

    accepted = agent.call("POST", f"/renewal-offers/{offer['id']}/accept")
    assert accepted.status_code == 201, accepted.json
    renewed = accepted.json
    assert renewed["renewal_of_id"] == policy["id"] and renewed["id"] != policy["id"]
    assert (renewed["state"], renewed["start_date"], renewed["premium"]) == (
        "in_force",
        end.isoformat(),
        "1350.00",
    )
    assert renewed["number"].startswith(f"POL-{end.year}-")
    assert renewed["number"] != policy["number"]
    (version,) = renewed["versions"]
    assert (version["kind"], version["adjustment"], version["risk"]) == (
        "new_business",
        "1350.00",
        offer["risk"],
    )
    assert version["reason"] == f"Renewal of {policy['number']}"
    (after,) = offers(agent, policy["id"])
    assert (after["status"], after["renewed_policy_id"]) == ("accepted", renewed["id"])
    again = agent.call("POST", f"/renewal-offers/{offer['id']}/accept")
    assert again.status_code == 409
    assert again.json["detail"] == "This renewal offer is accepted: it can no longer be answered."


def test_the_window_follows_the_tenant_setting_and_a_decline_is_final(
    app: Flask, cover: Tenant, agent: Staff, products: dict
) -> None:
    start = plain_year_start()
    policy = issued(agent, new_customer(agent)["id"], start=start)
    end = date.fromisoformat(policy["end_date"])
    with app.app_context(), tenant_context(cover):
        settings.set("renewal_offer_days", 60)
        db.session.commit()
    try:
        offer_job(app, cover, end - timedelta(days=60))
    finally:
        with app.app_context(), tenant_context(cover):
            settings.set("renewal_offer_days", 30)
            db.session.commit()
    (offer,) = offers(agent, policy["id"])

    declined = agent.call("POST", f"/renewal-offers/{offer['id']}/decline")
    assert declined.status_code == 200, declined.json
    assert declined.json["status"] == "declined" and declined.json["decided_at"]
    assert agent.call("POST", f"/renewal-offers/{offer['id']}/accept").status_code == 409
    # Declined stays declined: the job does not offer again.
    offer_job(app, cover, end - timedelta(days=10))
    assert [o["status"] for o in offers(agent, policy["id"])] == ["declined"]


def test_a_renewal_on_a_new_tariff_is_explained_factor_by_factor(
    app: Flask, cover: Tenant, agent: Staff, products: dict, new_tariff: date
) -> None:
    start = plain_year_start()
    policy = issued(
        agent,
        new_customer(agent)["id"],
        line=TARIFF_LINE,
        start=start,
        risk=home_risk(claim_free_years=1),
    )
    assert policy["premium"] == "1350.00"  # 1,500.00 less 10%
    end = date.fromisoformat(policy["end_date"])
    offer_job(app, cover, end - timedelta(days=5))
    (offer,) = offers(agent, policy["id"])
    # Renewal on the new table: 2.0% -> 2,000.00, 2 claim-free years 25% off -> 1,500.00.
    assert (offer["premium"], offer["rate_table_version"]) == ("1500.00", "tariff-2")
    assert [item["text"] for item in offer["explanation"]] == [
        "Base premium 1.5% \u2192 2.0%: +500.00",
        f"No-claim discount 10% \u2192 25%: {MINUS}350.00",
    ]


def test_a_motor_renewal_ages_the_car_and_raises_the_bonus(
    app: Flask, cover: Tenant, agent: Staff, products: dict
) -> None:
    start = plain_year_start()
    policy = issued(agent, new_customer(agent)["id"], line=MOTOR, start=start, risk=REFERENCE_MOTOR)
    assert policy["premium"] == "14391.12"
    end = date.fromisoformat(policy["end_date"])
    offer_job(app, cover, end - timedelta(days=1))
    (offer,) = offers(agent, policy["id"])
    # 48 months, 4 claim-free years: IDV 800,000 x 60% = 480,000.00; OD 3.283% =
    # 15,758.40; discount 25% capped at 1,500.00; bonus 45% of 14,258.40 = 6,416.28;
    # third party 3,416.00: 11,258.12.
    assert offer["risk"]["vehicle_age_months"] == 48 and offer["risk"]["claim_free_years"] == 4
    assert offer["premium"] == "11258.12"
    effects = {item["step"]: item["effect"] for item in offer["explanation"]}
    # OD 15,758.40 - 18,384.80; bonus -(6,416.28 - 5,909.68).
    assert effects == {"own_damage": "-2626.40", "no_claim_bonus": "-506.60"}
    texts = [item["text"] for item in offer["explanation"]]
    assert f"No-claim bonus 35% \u2192 45%: {MINUS}506.60" in texts
    assert sum(Decimal(e) for e in effects.values()) == Decimal("11258.12") - Decimal("14391.12")


def test_a_risk_the_next_term_cannot_rate_gets_no_offer_and_is_reported(
    app: Flask, cover: Tenant, agent: Staff, products: dict
) -> None:
    start = plain_year_start()
    risk = {**REFERENCE_MOTOR, "vehicle_age_months": 58}
    policy = issued(agent, new_customer(agent)["id"], line=MOTOR, start=start, risk=risk)
    end = date.fromisoformat(policy["end_date"])
    result = offer_job(app, cover, end - timedelta(days=2))
    assert offers(agent, policy["id"]) == []
    (refusal,) = [r for r in result["refusals"] if r["policy_id"] == policy["id"]]
    # 70 months old next year: an agreed value is needed.
    assert "risk.agreed_value" in refusal["errors"]


def test_term_life_renews_at_the_attained_age_for_a_new_level_term(
    app: Flask, cover: Tenant, agent: Staff, products: dict
) -> None:
    start = plain_year_start()
    customer = new_customer(agent)
    quote_answer = agent.call(
        "POST",
        "/quotes",
        json={
            "product": LIFE,
            "customer_id": customer["id"],
            "start_date": start.isoformat(),
            "risk": {**REFERENCE_LIFE, "term_years": 5},
        },
    )
    assert quote_answer.status_code == 201, quote_answer.json
    declarations = {
        "good_health": True,
        "smoker_status_true": True,
        "no_hazardous_occupation": True,
    }
    bound = agent.call(
        "POST", f"/quotes/{quote_answer.json['id']}/bind", json={"declarations": declarations}
    ).json
    policy = agent.call("POST", f"/policies/{bound['id']}/issue").json
    end = date.fromisoformat(policy["end_date"])
    assert end == add_years(start, 5)
    offer_job(app, cover, end - timedelta(days=3))
    (offer,) = offers(agent, policy["id"])
    # Age 45 at renewal, for another five-year level term.
    assert offer["risk"]["issue_age"] == 45 and offer["end_date"] == add_years(end, 5).isoformat()
    assert Decimal(offer["premium"]) > Decimal(policy["premium"])


def test_an_endorsement_re_rates_the_open_offer(
    app: Flask, cover: Tenant, agent: Staff, products: dict
) -> None:
    start = plain_year_start()
    policy = issued(agent, new_customer(agent)["id"], start=start)
    end = date.fromisoformat(policy["end_date"])
    offer_job(app, cover, end - timedelta(days=20))
    (offer,) = offers(agent, policy["id"])
    assert offer["premium"] == "1350.00"
    answer = agent.call(
        "POST",
        f"/policies/{policy['id']}/endorsements",
        json={
            "effective_from": (end - timedelta(days=10)).isoformat(),
            "risk_changes": {"sum_insured": "200000"},
            "reason": "Revaluation",
        },
    )
    assert answer.status_code == 201, answer.json
    (refreshed,) = offers(agent, policy["id"])
    # 200,000 x 1.5% = 3,000.00 less 10%: 2,700.00, compared with the endorsed 3,000.00.
    assert (refreshed["id"], refreshed["premium"], refreshed["previous_premium"]) == (
        offer["id"],
        "2700.00",
        "3000.00",
    )


def test_bulk_re_rating_reports_the_book_and_refreshes_open_offers(
    app: Flask,
    cover: Tenant,
    admin: Staff,
    agent: Staff,
    products: dict,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    customer = new_customer(agent)
    start = plain_year_start()
    small = issued(agent, customer["id"], line=BOOK_LINE, start=start)  # 1,500.00
    large = issued(
        agent,
        customer["id"],
        line=BOOK_LINE,
        start=start + timedelta(days=1),
        risk=home_risk("300000", 3),
    )  # 4,500.00 less 30%: 3,150.00
    tiny = issued(agent, customer["id"], line=BOOK_LINE, start=start, risk=home_risk("50000"))
    assert (small["premium"], large["premium"], tiny["premium"]) == ("1500.00", "3150.00", "750.00")
    small_end = date.fromisoformat(small["end_date"])
    offer_job(app, cover, small_end - timedelta(days=1))
    (before,) = offers(agent, small["id"])
    assert before["premium"] == "1350.00"

    # A new tariff from tomorrow: 2.0%, discounts 0, 30, 40, 50%.
    content = json.dumps(
        {"version": "book-2", "rate_percent": "2.0", "ncd_percent": ["0", "30", "40", "50"]}
    ).encode()
    with acting(app, cover, admin.user_id) as user:
        table = product_operations.upload_rate_table(BOOK_LINE, "book-2.json", content, user=user)
        product_operations.add_product_version(
            products[BOOK_LINE], date.today() + timedelta(days=1), table.id, user=user
        )

    # Chunks of two: the offers of each chunk are found by its range of ids, the last
    # chunk's (one policy) too.
    monkeypatch.setattr(rerating, "CHUNK", 2)
    job = run_job(app, cover, RERATE_JOB, {"line_code": BOOK_LINE}, "bulk")
    monkeypatch.undo()

    assert job.status == "finished", job.error
    assert (job.progress, job.total) == (3, 3)
    report = job.result
    # Next renewals on the new table: small 2,000 - 30% = 1,400.00 (-100.00, -6.7%);
    # large 6,000 - 50% = 3,000.00 (-150.00, -4.8%); tiny 1,000 - 30% = 700.00 (-50.00).
    assert (report["policies"], report["rerated"], report["refused"]) == (3, 3, 0)
    assert (report["current_total"], report["rerated_total"], report["change_total"]) == (
        "5400.00",
        "5100.00",
        "-300.00",
    )
    assert {k: v for k, v in report["bands"].items() if v} == {"-10% to -5%": 2, "-5% to 0%": 1}
    assert [(r["policy_id"], r["change"]) for r in report["largest_decreases"]] == [
        (large["id"], "-150.00"),
        (small["id"], "-100.00"),
        (tiny["id"], "-50.00"),
    ]
    assert report["largest_increases"] == []
    # The job offered all three renewals (all end within its window): all re-rated.
    assert report["offers_refreshed"] == 3
    (after,) = offers(agent, small["id"])
    assert (after["id"], after["premium"], after["rate_table_version"]) == (
        before["id"],
        "1400.00",
        "book-2",
    )
    assert [item["text"] for item in after["explanation"]] == [
        "Base premium 1.5% \u2192 2.0%: +500.00",
        f"No-claim discount 0% \u2192 30%: {MINUS}600.00",
    ]
    # The policies themselves are not changed: their term's price is fixed.
    with app.app_context(), tenant_context(cover):
        premiums = db.session.scalars(
            select(Policy.premium).where(Policy.id.in_([small["id"], large["id"]]))
        ).all()
        assert sorted(premiums) == [Decimal("1500.00"), Decimal("3150.00")]
        offer_row = db.session.get(RenewalOffer, before["id"])
        assert offer_row.status == "offered"

    # Idempotent: the same report again, nothing more to refresh.
    again = run_job(app, cover, RERATE_JOB, {"line_code": BOOK_LINE}, "bulk")
    assert {**again.result, "offers_refreshed": 3} == report
    assert again.result["offers_refreshed"] == 0
